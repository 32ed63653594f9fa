#!/usr/bin/env python3
"""Expected token ids for the Swift tokenizer tests, computed independently of the Swift code.

Reads vocabulary, merges and token types from the GGUF with the `gguf` package and tokenizes a
fixed set of strings twice:
  * with a plain Python BPE (pre-tokenization via the `regex` module's \\p{..} classes, llama.cpp's
    rule for tokenizer.ggml.pre=smollm: isolate every \\p{N}, then the GPT-2 pattern);
  * with Hugging Face `tokenizers` (Digits(individual_digits) + ByteLevel), when importable.
Both must agree; the result is written as JSON.

usage: tools/tokenizer_fixture.py [model.gguf] [out.json]
"""
import json
import os
import sys

from gguf import GGUFReader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "Tests", "ModelFormatsTests", "Fixtures", "tokenizer_cases.json")
GPL = "/usr/share/common-licenses/GPL-3"

CASES = [
    ("Hello world", True),
    ("The quick brown fox jumps over the lazy dog.", True),
    ("12345 and 3.14", True),
    ("   leading and trailing   ", True),
    (" a  b   c    d", True),
    ("line one\nline two\n\n\tindented\r\nwindows", True),
    ("trailing newline\n", True),
    ("don't I'll we've they're she'd it's I'm DON'T", True),
    ("naïve café", True),
    ("nai\u0308ve cafe\u0301", True),
    ("🙂👍🏽", True),
    ("emoji in text 🙂 ok 👍🏽!", True),
    ("你好，世界！这是一个测试。", True),
    ("Привет, мир! Ελληνικά العربية 한국어 ไทย", True),
    ("<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n", True),
    ("<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n", False),
    ("<|im_start|><|im_end|><|endoftext|>x<|im_start", True),
    ("a\u00a0b\u3000c\u2009d", True),
    ("x = f(a, b) -> [1, 2, 3]; // comment", True),
    ("!!!???...---___", True),
    ("!\u0004! a\u0013b", True),
    ("₂ ½ Ⅷ ٣ 2nd", True),
    ("", True),
    (" ", True),
    ("\n\n\n", True),
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def load_gguf(path):
    r = GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    assert pre == "smollm", f"this script implements the smollm pre-tokenizer, model says {pre}"
    return tokens, merges, types


class PlainBPE:
    """Textbook BPE: lowest-rank adjacent pair first, on byte-level strings."""

    def __init__(self, tokens, merges, types):
        import regex
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.b2u = bytes_to_unicode()
        self.specials = sorted((t for t, ty in zip(tokens, types) if ty in (3, 4)), key=len, reverse=True)
        self.special_re = regex.compile("|".join(regex.escape(s) for s in self.specials))
        self.digits = regex.compile(r"\p{N}")
        self.gpt2 = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def pretokenize(self, text):
        out = []
        pos = 0
        for m in self.digits.finditer(text):
            out += self.gpt2.findall(text[pos:m.start()])
            out.append(m.group())
            pos = m.end()
        out += self.gpt2.findall(text[pos:])
        return out

    def bpe(self, word):
        # bytes whose single-byte token is missing are dropped (HF behaviour without unk_token)
        syms = [self.b2u[b] for b in word.encode("utf-8") if self.b2u[b] in self.vocab]
        while len(syms) > 1:
            best = min(range(len(syms) - 1), key=lambda i: (self.ranks.get((syms[i], syms[i + 1]), 1 << 30), i))
            if (syms[best], syms[best + 1]) not in self.ranks:
                break
            syms[best:best + 2] = [syms[best] + syms[best + 1]]
        return [self.vocab[s] for s in syms]

    def encode(self, text, parse_special):
        ids = []
        pos = 0
        if parse_special:
            for m in self.special_re.finditer(text):
                for w in self.pretokenize(text[pos:m.start()]):
                    ids += self.bpe(w)
                ids.append(self.vocab[m.group()])
                pos = m.end()
        for w in self.pretokenize(text[pos:]):
            ids += self.bpe(w)
        return ids


def hf_tokenizers(tokens, merges, types):
    try:
        from tokenizers import Tokenizer, AddedToken, models, pre_tokenizers, decoders
    except ImportError:
        return None
    vocab = {t: i for i, t in enumerate(tokens)}
    plain = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    plain.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    plain.decoder = decoders.ByteLevel()
    special = Tokenizer.from_str(plain.to_str())
    special.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    return lambda text, parse: (special if parse else plain).encode(text, add_special_tokens=False).ids


def main():
    tokens, merges, types = load_gguf(MODEL)
    cases = list(CASES)
    if os.path.exists(GPL):
        cases.append((open(GPL, encoding="utf-8").read(), True))
    ref = PlainBPE(tokens, merges, types)
    hf = hf_tokenizers(tokens, merges, types)
    print("HF tokenizers:", "available, cross-checking" if hf else "not installed, plain BPE only", file=sys.stderr)
    out = []
    for text, parse in cases:
        ids = ref.encode(text, parse)
        if hf:
            hids = hf(text, parse)
            if hids != ids:
                sys.exit(f"plain BPE and HF tokenizers disagree on {text[:60]!r}:\n{ids}\n{hids}")
        out.append({"text": text, "parseSpecial": parse, "ids": ids})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"model": os.path.basename(MODEL), "cases": out}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(out)} cases to {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
