"""The 2-layer LSTM language model of bench_models' `lstm/B` case (issue 17's target:
batch-1 inference at most 0.2x torch eager): pytorch/examples' word_language_model
RNNModel (Embedding, nn.LSTM, Linear decoder, log_softmax) at a character-level size:
65 tokens, 64-wide embedding and hidden state, 2 layers, 32 steps, zero initial state
made by the forward (as the example's init_hidden)."""


def model(torch, ntoken=65, ninp=64, nhid=64, nlayers=2):
    nn, F = torch.nn, torch.nn.functional

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers)
            self.decoder = nn.Linear(nhid, ntoken)

        def forward(self, idx):
            h = self.encoder.weight.new_zeros(nlayers, idx.shape[1], nhid)
            output, _ = self.rnn(self.encoder(idx), (h, h))
            return F.log_softmax(self.decoder(output).view(-1, ntoken), dim=1)
    return RNNModel


def make(torch, batch, seq=32, ntoken=65):
    """(model in eval mode, a (seq, batch) token batch)."""
    m = model(torch, ntoken)().eval()
    x = torch.randint(0, ntoken, (seq, batch), generator=torch.Generator().manual_seed(0))
    return m, x
