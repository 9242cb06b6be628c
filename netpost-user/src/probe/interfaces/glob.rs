//! Shell-style globs for `-i` (`veth*`, `eth?`, `tap[0-3]`), as fnmatch(3) without flags
//! reads them: `*` any run of characters, `?` one character, `[...]` one of a set (ranges,
//! `!` or `^` negating), `\` quoting the next character. Pure.

/// Whether `arg` is a glob rather than a name. Linux allows these characters in interface
/// names, but no one names one so; a name that has them is taken as a pattern.
pub fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// Whether `name` matches `pattern` as a whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and how much of the name it has taken: on a mismatch it takes
    // one character more (the usual backtracking; a later `*` supersedes an earlier one).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi..], n[ni]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(2),
            Some(&c) => (c == n[ni]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ni += 1;
            }
            (None, Some((after, taken))) => {
                star = Some((after, taken + 1));
                pi = after;
                ni = taken + 1;
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` at the start of `p` against `c`: the class's length when `c` is in it, None
/// when not. An unterminated `[` is a literal `[`.
fn class(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let Some(&lo) = p.get(i) else {
            // No closing bracket: the `[` stands for itself.
            return (c == '[').then_some(1);
        };
        // A `]` first in the set is a member, not the end.
        if lo == ']' && !first {
            return (found != negate).then_some(i + 1);
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            found |= (lo..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("veth*", "veth"));
        assert!(matches("veth*", "veth1a2b"));
        assert!(!matches("veth*", "eth0"));
        assert!(matches("*", ""));
        assert!(matches("*0", "veth0"));
        assert!(!matches("*0", "veth01"));
        assert!(matches("v*t*h", "vXtYh"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("eth?", "eth1"));
        assert!(!matches("eth?", "eth"));
        assert!(!matches("eth?", "eth10"));
        assert!(matches("eth0", "eth0"));
        assert!(!matches("eth0", "eth00"));
    }

    #[test]
    fn classes_with_ranges_and_negation() {
        assert!(matches("tap[0-3]", "tap2"));
        assert!(!matches("tap[0-3]", "tap4"));
        assert!(matches("tap[!0-3]", "tap4"));
        assert!(matches("tap[^0-3]", "tapx"));
        assert!(!matches("tap[!0-3]", "tap0"));
        assert!(matches("x[ab]y", "xby"));
        assert!(matches("x[]a]y", "x]y"), "a leading ] is a member");
        assert!(matches("x[a-]y", "x-y"), "a trailing - is a member");
        assert!(matches("x[*", "x[*"), "unterminated: a literal [");
        assert!(matches("x\\*", "x*"));
        assert!(!matches("x\\*", "xy"));
    }

    #[test]
    fn patterns_are_told_from_names() {
        assert!(is_pattern("veth*"));
        assert!(is_pattern("eth?"));
        assert!(is_pattern("tap[0-3]"));
        assert!(!is_pattern("eth0"));
        assert!(!is_pattern("br-lan.10"));
    }
}
