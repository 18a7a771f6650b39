//! Plain text tables and short forms of long values, for every command's output.

pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn shorten(text: &str, max: usize) -> String {
    let flat = text.trim().replace('\n', " ⏎ ");
    if flat.chars().count() <= max { flat } else { flat.chars().take(max.saturating_sub(1)).collect::<String>() + "…" }
}

/// A plain text table; the last column is left unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let render = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut line = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                line.push_str(&cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        line.trim_end().to_owned() + "\n"
    };
    let mut text = render(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push_str(&render(row.clone()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_marks_the_cut() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 5), "abcd…");
        assert_eq!(shorten("a\nb", 10), "a ⏎ b");
    }
}
