//! Lexer: lines, indentation, comments, words with their columns.

/// One word and its 1-based character column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok<'a> {
    pub text: &'a str,
    pub col: usize,
}

/// What a physical line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineKind<'a> {
    /// Blank line.
    Blank,
    /// `!` comment. `top` when the `!` is in column 1 (a section separator).
    Comment { top: bool },
    /// A command.
    Command(Vec<Tok<'a>>),
}

/// A lexed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub no: usize,
    /// Leading whitespace in characters (a tab counts as one).
    pub indent: usize,
    pub kind: LineKind<'a>,
    /// The line without leading/trailing whitespace.
    pub text: &'a str,
}

/// Split `text` into lines. A `!` starts a comment only as the first non-blank character (so
/// `ip nhrp authentication BLUE!KEY` keeps its `!`).
pub(crate) fn lex(text: &str) -> Vec<Line<'_>> {
    text.split('\n')
        .enumerate()
        .map(|(i, raw)| lex_line(i + 1, raw.strip_suffix('\r').unwrap_or(raw)))
        .collect()
}

fn lex_line(no: usize, raw: &str) -> Line<'_> {
    let mut toks = Vec::new();
    let mut indent = 0;
    let mut seen = false;
    let mut start: Option<(usize, usize)> = None; // (byte, col)
    let mut col = 0;
    for (b, c) in raw.char_indices() {
        col += 1;
        if c.is_whitespace() || c.is_control() {
            if let Some((sb, sc)) = start.take() {
                toks.push(Tok {
                    text: &raw[sb..b],
                    col: sc,
                });
            }
            if !seen {
                indent += 1;
            }
        } else {
            seen = true;
            if start.is_none() {
                start = Some((b, col));
            }
        }
    }
    if let Some((sb, sc)) = start {
        toks.push(Tok {
            text: &raw[sb..],
            col: sc,
        });
    }
    let text = raw.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    let kind = match toks.first() {
        None => LineKind::Blank,
        Some(t) if t.text.starts_with('!') => LineKind::Comment { top: indent == 0 },
        Some(_) => LineKind::Command(toks),
    };
    Line {
        no,
        indent,
        kind,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bang_inside_a_word_is_not_a_comment() {
        let l = lex(" ip nhrp authentication BLUE!KEY");
        let LineKind::Command(t) = &l[0].kind else {
            panic!("not a command")
        };
        assert_eq!(t.len(), 4);
        assert_eq!(t[3].text, "BLUE!KEY");
        assert_eq!(t[3].col, 25);
        assert_eq!(l[0].indent, 1);
    }

    #[test]
    fn comments_and_blank_lines() {
        let l = lex("!\n  ! indented\n\r\n");
        assert_eq!(l[0].kind, LineKind::Comment { top: true });
        assert_eq!(l[1].kind, LineKind::Comment { top: false });
        assert_eq!(l[2].kind, LineKind::Blank);
    }
}
