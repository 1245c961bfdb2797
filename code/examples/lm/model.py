"""The lm recipe's model: embedding, LSTM or GRU, linear decoder (pytorch/examples' word_language_model).

Usage: model = RNNModel(args, ntoken); logits = model(tokens)   # tokens (seq, batch) -> (seq, batch, ntoken)

Every chunk starts from a zero hidden state: the training chunks come in a shuffled order, so
there is no previous chunk to carry the state over from, and nothing but the weights has to be
checkpointed for an exact resume.
"""
from torch import nn


class RNNModel(nn.Module):
    def __init__(self, args, ntoken):
        super().__init__()
        self.drop = nn.Dropout(args.dropout)
        self.encoder = nn.Embedding(ntoken, args.emsize)
        rnn = nn.LSTM if args.rnn == "LSTM" else nn.GRU
        # the recurrent layers' own dropout sits between layers: with one layer there is none
        self.rnn = rnn(args.emsize, args.nhid, args.nlayers, dropout=args.dropout if args.nlayers > 1 else 0.0)
        self.decoder = nn.Linear(args.nhid, ntoken)
        init = 0.1  # word_language_model's uniform range: small logits, a first loss near log(ntoken)
        nn.init.uniform_(self.encoder.weight, -init, init)
        nn.init.zeros_(self.decoder.bias)
        if args.tied:  # one matrix for reading and writing words: fewer weights, a better model
            self.decoder.weight = self.encoder.weight
        else:
            nn.init.uniform_(self.decoder.weight, -init, init)

    def forward(self, tokens):
        output, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(self.drop(output))
