/// The scanners behind `PreTokenizer`: each walks scalars `s` (with their classes `c`) and reports
/// pieces as half-open index ranges, trying the regex's alternatives in order at each position.
struct PreTokenScan {
    let s: [Unicode.Scalar]
    let c: [PreTokenizer.CharClass]

    /// `'s 't 're 've 'm 'll 'd` at `i` (within `hi`): the contraction's length, or 0.
    @inline(__always)
    private func contraction(_ i: Int, _ hi: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == "'", i + 1 < hi else { return 0 }
        func lower(_ x: Unicode.Scalar) -> Unicode.Scalar {
            caseInsensitive && (65...90).contains(x.value) ? Unicode.Scalar(x.value + 32)! : x
        }
        let a = lower(s[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
        guard i + 2 < hi else { return 0 }
        let b = lower(s[i + 2])
        return (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") ? 3 : 0
    }

    /// A whitespace run from `i`: `\s+(?!\S)` leaves its last character to prefix the following
    /// piece when something follows, else `\s+` takes it all.
    @inline(__always)
    private func spaceRunEnd(_ i: Int, _ hi: Int) -> Int {
        var e = i + 1
        while e < hi, c[e] == .space { e += 1 }
        return e < hi && e - i >= 2 ? e - 1 : e
    }

    /// GPT-2's rule on `s[lo..<hi]`.
    func gpt2(_ lo: Int, _ hi: Int, _ emit: (Int, Int) -> Void) {
        var i = lo
        while i < hi {
            let n = contraction(i, hi, caseInsensitive: false)
            if n > 0 { emit(i, i + n); i += n; continue }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional plain space, then a run of one class.
            var j = i
            if s[i] == " ", i + 1 < hi, c[i + 1] != .space { j = i + 1 }
            let k = c[j]
            if k != .space {
                var e = j + 1
                while e < hi, c[e] == k { e += 1 }
                emit(i, e); i = e; continue
            }
            let e = spaceRunEnd(i, hi)
            emit(i, e); i = e
        }
    }

    /// Llama 3's rule on `s[lo..<hi]`; `maxDigits` 3 for Llama 3 (`\p{N}{1,3}`), 1 for Qwen2 (`\p{N}`).
    func llama3(_ lo: Int, _ hi: Int, maxDigits: Int, _ emit: (Int, Int) -> Void) {
        @inline(__always) func isNewline(_ x: Unicode.Scalar) -> Bool { x == "\n" || x == "\r" }
        var i = lo
        while i < hi {
            let n = contraction(i, hi, caseInsensitive: true)
            if n > 0 { emit(i, i + n); i += n; continue }
            // `[^\r\n\p{L}\p{N}]?\p{L}+`: letters, optionally led by one character that is none of those.
            if !isNewline(s[i]), c[i] != .number, c[i] == .letter || (i + 1 < hi && c[i + 1] == .letter) {
                var e = i + 1
                while e < hi, c[e] == .letter { e += 1 }
                emit(i, e); i = e; continue
            }
            // `\p{N}{1,maxDigits}`
            if c[i] == .number {
                var e = i + 1
                while e < hi, e - i < maxDigits, c[e] == .number { e += 1 }
                emit(i, e); i = e; continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let j = s[i] == " " ? i + 1 : i
            if j < hi, c[j] == .other {
                var e = j + 1
                while e < hi, c[e] == .other { e += 1 }
                while e < hi, isNewline(s[e]) { e += 1 }
                emit(i, e); i = e; continue
            }
            // `\s*[\r\n]+`: a whitespace run up to its last line break, when it has one.
            var runEnd = i
            var lastBreak = -1
            while runEnd < hi, c[runEnd] == .space {
                if isNewline(s[runEnd]) { lastBreak = runEnd }
                runEnd += 1
            }
            if lastBreak >= 0 { emit(i, lastBreak + 1); i = lastBreak + 1; continue }
            if runEnd > i {
                let e = spaceRunEnd(i, hi)
                emit(i, e); i = e; continue
            }
            emit(i, i + 1); i += 1
        }
    }
}
