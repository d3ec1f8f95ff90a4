"""Small real architectures, written as pytorch/examples and nanoGPT write them, trained
through tracejit.compile(model) and eagerly side by side: 20 optimizer steps, then the
parameters agree within 1e-4 relative, and inference (eval) agrees too. Dropout is 0
where the comparison is exact (compiled draws are not eager's draws); the models with
dropout in training mode are run to check they train."""
import copy
import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tracejit  # noqa: E402


def sgd(params, lr):
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


# (SGD: Adam divides by the gradient's magnitude, so it turns the rounding noise of a
# gradient that is zero in exact arithmetic, a key projection's bias, a bias before a
# batch norm, into steps of the learning rate, in eager as much as here)
def train_both(model, batches, loss_fn, steps=20, opt=sgd, lr=1e-2):
    """The model trained through tracejit.compile and a copy trained eagerly on the same
    batches; returns (compiled model, eager model) after the steps."""
    ours, ref = model, copy.deepcopy(model)
    f = tracejit.compile(ours)
    opts = opt(ours.parameters(), lr=lr), opt(ref.parameters(), lr=lr)
    for step in range(steps):
        args, target = batches(step)
        for o, run in zip(opts, (f, ref)):
            o.zero_grad()
            loss = loss_fn(run(*args), target)
            loss.backward()
            o.step()
        assert torch.isfinite(loss)
    return f, ours, ref


def assert_params_close(ours, ref, rtol=1e-4, atol=1e-5):
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def assert_buffers_close(ours, ref, rtol=1e-5, atol=1e-6):
    """Running statistics agree within float32 rounding; counts exactly."""
    for (name, b), c in zip(ours.named_buffers(), ref.buffers()):
        torch.testing.assert_close(b, c, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def check_model(model, batches, loss_fn, steps=20, **kw):
    torch.manual_seed(0)
    f, ours, ref = train_both(model, batches, loss_fn, steps, **kw)
    assert_params_close(ours, ref)
    ours.eval()
    ref.eval()
    args, _ = batches(steps)
    with torch.no_grad():
        got, want = f(*args), ref(*args)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---- pytorch/examples' MNIST ConvNet, super-resolution net and VAE -------------------------

class ConvNet(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(2 * dropout)
        self.fc1 = nn.Linear(8 * 5 * 5, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def images(shape, classes=10):
    def batches(step):
        g = torch.Generator().manual_seed(step)
        return (torch.rand(shape, generator=g),), torch.randint(0, classes, (shape[0],), generator=g)
    return batches


def test_mnist_convnet_trains_as_eager():
    check_model(ConvNet(), images((8, 1, 14, 14)), F.nll_loss)


def test_mnist_convnet_with_dropout_trains():
    """Dropout (0.25, then 0.5 over 16 units) makes one run's curve noisy (eager's own
    draws leave seed 0 at 0.92x its first loss after 15 steps): three seeds, 30 steps,
    their mean best of the last 5 below 0.9x their mean first loss."""
    first, last = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        m = ConvNet(dropout=0.25)
        f = tracejit.compile(m)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        x, y = images((16, 1, 14, 14))(0)
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = F.nll_loss(f(*x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        first.append(losses[0])
        last.append(min(losses[-5:]))
    assert sum(last) < 0.9 * sum(first), (first, last)
    m.eval()
    with torch.no_grad():                  # no draws in eval: eager's result exactly
        torch.testing.assert_close(f(*x), m(*x))


class SuperResolution(nn.Module):
    def __init__(self, upscale_factor=2):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 8, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(8, 8, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(8, upscale_factor ** 2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.pixel_shuffle(self.conv3(x))


def test_super_resolution_trains_as_eager():
    def batches(step):
        g = torch.Generator().manual_seed(step)
        return (torch.rand(2, 1, 8, 8, generator=g),), torch.rand(2, 1, 16, 16, generator=g)
    check_model(SuperResolution(), batches, F.mse_loss)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc21 = nn.Linear(32, 4)
        self.fc22 = nn.Linear(32, 4)
        self.fc3 = nn.Linear(4, 32)
        self.fc4 = nn.Linear(32, 64)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x, eps):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar


def vae_loss(out, x):
    recon_x, mu, logvar = out
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def test_vae_trains_as_eager():
    def batches(step):
        g = torch.Generator().manual_seed(step)
        x = torch.rand(8, 1, 8, 8, generator=g)
        return (x, torch.randn(8, 4, generator=g)), x
    check_model(VAE(), batches, vae_loss, lr=1e-3)


def test_adam_training_matches_eager_where_gradients_are_not_noise():
    torch.manual_seed(0)
    check_model(SuperResolution(), lambda step: ((torch.rand(2, 1, 6, 6),), torch.rand(2, 1, 12, 12)),
                F.mse_loss, opt=torch.optim.Adam, lr=1e-3)


def test_vae_with_its_own_draws_trains():
    class Drawing(VAE):
        def forward(self, x):
            return super().forward(x, torch.randn(x.shape[0], 4))
    torch.manual_seed(0)
    m = Drawing()
    f = tracejit.compile(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(8, 1, 8, 8)
    first = None
    for _ in range(10):
        opt.zero_grad()
        loss = vae_loss(f(x), x)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first


# ---- word language models: RNNModel (LSTM, GRU, RNN_TANH) and TransformerModel -------------

class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ("LSTM", "GRU"):
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity="tanh", dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.decoder.out_features)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


class LanguageModel(nn.Module):
    """The example's training loop feeds init_hidden's state; here the forward makes it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x, self.inner.init_hidden(x.shape[1]))[0]


def tokens(ntoken, seq=6, batch=3):
    def batches(step):
        g = torch.Generator().manual_seed(step)
        data = torch.randint(0, ntoken, (seq + 1, batch), generator=g)
        return (data[:-1],), data[1:].reshape(-1)
    return batches


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_TANH"])
def test_rnn_language_model_trains_as_eager(kind):
    torch.manual_seed(0)
    check_model(LanguageModel(RNNModel(kind, 20, 8, 12, 2)), tokens(20), F.nll_loss)


def test_lstm_hidden_state_passed_in_and_out():
    torch.manual_seed(0)
    m = RNNModel("LSTM", 20, 8, 12, 2)
    f = tracejit.compile(m)
    x = tokens(20)(0)[0][0]
    hidden = m.init_hidden(3)
    ours, theirs = f(x, hidden), m(x, hidden)
    for a, b in zip(torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(theirs)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(f(x, ours[1])[0], m(x, theirs[1])[0])


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.0, max_len=64):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        return self.dropout(x + self.pe[:x.size(0), :])


class TransformerModel(nn.Module):
    def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.0, norm_first=False):
        super().__init__()
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.embed = nn.Embedding(ntoken, ninp)
        self.decoder = nn.Linear(ninp, ntoken)
        self.ninp = ninp

    def forward(self, src):
        mask = nn.Transformer.generate_square_subsequent_mask(len(src))
        src = self.pos_encoder(self.embed(src) * math.sqrt(self.ninp))
        output = self.encoder(src, mask=mask)
        return F.log_softmax(self.decoder(output), dim=-1).view(-1, self.decoder.out_features)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_language_model_trains_as_eager(norm_first):
    torch.manual_seed(0)
    check_model(TransformerModel(20, 8, 2, 16, 2, norm_first=norm_first), tokens(20),
                F.nll_loss)


def test_transformer_with_dropout_trains():
    torch.manual_seed(0)
    m = TransformerModel(20, 8, 2, 16, 2, dropout=0.2)
    f = tracejit.compile(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    (x,), y = tokens(20)(0)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.nll_loss(f(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ---- a GPT block (nanoGPT's, with its default attention path) ----------------------------

class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab=20, n_embd=16, n_head=4, n_layer=2, block_size=8):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.wte.weight = self.lm_head.weight        # weight tying

    def forward(self, idx):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def test_gpt_trains_as_eager():
    def batches(step):
        g = torch.Generator().manual_seed(step)
        data = torch.randint(0, 20, (3, 9), generator=g)
        return (data[:, :-1],), data[:, 1:]

    def loss(logits, target):
        return F.cross_entropy(logits.view(-1, logits.size(-1)), target.reshape(-1))
    torch.manual_seed(0)
    check_model(GPT(), batches, loss)


# ---- normalization, attention modules, errors --------------------------------------------

def test_batchnorm_convnet_inference_and_training_with_running_stats():
    """In training mode BatchNorm updates running_mean, running_var and
    num_batches_tracked in place at every call, as eager does; eval() then reads them."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
    f = tracejit.compile(m)
    x = torch.randn(2, 3, 8, 8)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(f(x), m(x))
    m.train()
    f, ours, ref = train_both(m, images((4, 3, 8, 8), 4), F.cross_entropy, steps=5)
    assert_params_close(ours, ref)
    assert_buffers_close(ours, ref)
    assert int(ours[1].num_batches_tracked) == 5


def test_batchnorm_without_running_stats_trains_as_eager():
    m = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8, track_running_stats=False),
                      nn.Tanh(), nn.Linear(8, 1))

    def batches(step):
        g = torch.Generator().manual_seed(step)
        return (torch.randn(6, 5, generator=g),), torch.randn(6, 1, generator=g)
    torch.manual_seed(0)
    check_model(m, batches, F.mse_loss)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_module_with_masks(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    q = torch.randn(3, 4, 8) if batch_first else torch.randn(4, 3, 8)   # (B=3, T=4)
    kpm = torch.tensor([[False, False, True, False]] * 3)
    mask = nn.Transformer.generate_square_subsequent_mask(4).bool()

    def run(m, q):
        return m(q, q, q, key_padding_mask=kpm, attn_mask=mask)

    f = tracejit.compile(run)
    with torch.no_grad():            # (the module is an argument here, not compiled)
        ours, theirs = f(mha, q), run(mha, q)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_transformer_decoder_layer_batch_first():
    torch.manual_seed(0)
    m = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    tgt, memory = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    f = tracejit.compile(lambda t, mem: m(t, mem, tgt_mask=mask))
    with torch.no_grad():            # (the module is read from a closure)
        torch.testing.assert_close(f(tgt, memory), m(tgt, memory, tgt_mask=mask))


def test_dcgan_style_nets_with_inplace_activations():
    """ConvTranspose2d + BatchNorm (eval) + ReLU(inplace=True), and Conv2d +
    LeakyReLU(inplace=True): a layer's result is a new tensor, so the in-place activation
    after it is eager's."""
    torch.manual_seed(0)
    g = nn.Sequential(nn.ConvTranspose2d(6, 8, 4, 1, 0, bias=False), nn.BatchNorm2d(8),
                      nn.ReLU(True), nn.ConvTranspose2d(8, 3, 4, 2, 1, bias=False), nn.Tanh())
    d = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                      nn.Conv2d(4, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    g.eval()
    z = torch.randn(2, 6, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(tracejit.compile(g)(z), g(z))
    torch.testing.assert_close(tracejit.compile(d)(g(z).detach()), d(g(z).detach()))
    f = tracejit.compile(d)
    img = torch.randn(2, 3, 8, 8)
    f(img).sum().backward()
    grads = [p.grad.clone() for p in d.parameters()]
    d.zero_grad()
    d(img).sum().backward()
    for a, p in zip(grads, d.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_multihead_attention_masks_as_arguments():
    """Masks passed to the compiled function are traced: torch's MultiheadAttention
    asks F._none_or_dtype about them (swapped for one that knows tracers while tracing)."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q = torch.randn(3, 4, 8)
    kpm = torch.tensor([[False, False, True, False]] * 3)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    f = tracejit.compile(lambda q, kpm, m: mha(q, q, q, key_padding_mask=kpm, attn_mask=m))
    with torch.no_grad():
        for k, m in ((kpm, mask.bool()), (torch.where(kpm, float("-inf"), 0.0), mask)):
            for a, b in zip(f(q, k, m), mha(q, q, q, key_padding_mask=k, attn_mask=m)):
                torch.testing.assert_close(a, b)
    assert F._none_or_dtype.__module__ == "torch.nn.functional"      # restored


def test_refusal_inside_a_torch_module_names_the_module():
    m = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Upsample(scale_factor=2, mode="bicubic"))
    with pytest.raises(tracejit.TraceError,
                       match=r"(?s)interpolate\(mode='bicubic'\) on 4-d input is not supported"
                             r".*at .*test_torch_models\.py:\d+.*"
                             r"reached inside torch\.nn\.Upsample\.forward"):
        with torch.no_grad():
            tracejit.compile(m)(torch.randn(1, 2, 4, 4))


# ---- pytorch/examples' dcgan and mnist_rnn: BatchNorm's running statistics in training --

def _dcgan(nz=8, ngf=4, ndf=4, nc=3):
    """dcgan/main.py's Generator and Discriminator (their widths scaled down)."""
    g = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

        def forward(self, input):
            return self.main(input).view(-1, 1).squeeze(1)

    def weights_init(m):
        if m.__class__.__name__.find("Conv") != -1:
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif m.__class__.__name__.find("BatchNorm") != -1:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    d = Discriminator()
    g.apply(weights_init)
    d.apply(weights_init)
    return g, d


def test_dcgan_training_steps_as_eager():
    """dcgan/main.py's loop: D on real, on fake.detach(), G through D(fake), Adam; each
    call of D in training mode updates its running statistics, as eager's."""
    torch.manual_seed(0)
    nets = _dcgan()
    runs = []
    for compiled in (False, True):
        g, d = copy.deepcopy(nets)
        rg, rd = (tracejit.compile(g), tracejit.compile(d)) if compiled else (g, d)
        opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        losses = []
        for step in range(3):
            gen = torch.Generator().manual_seed(step)
            real = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
            noise = torch.randn(2, 8, 1, 1, generator=gen)
            d.zero_grad()
            label = torch.full((2,), 1.0)
            err_real = F.binary_cross_entropy(rd(real), label)
            err_real.backward()
            fake = rg(noise)
            label.fill_(0.0)
            err_fake = F.binary_cross_entropy(rd(fake.detach()), label)
            err_fake.backward()
            opt_d.step()
            g.zero_grad()
            label.fill_(1.0)
            err_g = F.binary_cross_entropy(rd(fake), label)
            err_g.backward()
            opt_g.step()
            losses.append([err_real.item(), err_fake.item(), err_g.item()])
        runs.append((losses, g.state_dict(), d.state_dict()))
    (want, *ref), (got, *ours) = runs
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=1e-6)
    for a, b in zip(ref, ours):
        for name in a:                           # parameters and running statistics
            torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5,
                                       msg=lambda m: f"{name}: {m}")
    assert int(ours[1]["main.3.num_batches_tracked"]) == 9


class MnistRNN(nn.Module):
    """mnist_rnn/main.py's Net (its dropouts set to 0 for an exact comparison)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(64)
        self.dropout1 = nn.Dropout(0.0)
        self.dropout2 = nn.Dropout(0.0)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, input):
        input = input.reshape(-1, 28, 28)
        output, hidden = self.rnn(input)
        output = output[:, -1, :]
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = F.relu(self.fc1(output))
        output = self.dropout2(output)
        return F.log_softmax(self.fc2(output), dim=1)


def test_mnist_rnn_trains_with_running_stats_as_eager():
    torch.manual_seed(0)
    f, ours, ref = train_both(MnistRNN(), images((4, 1, 28, 28)), F.nll_loss, steps=3,
                              opt=torch.optim.Adadelta, lr=0.1)
    assert_params_close(ours, ref)
    assert_buffers_close(ours, ref)
    assert int(ours.batchnorm.num_batches_tracked) == 3
