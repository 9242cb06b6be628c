//! One widget per panel, each rendering from the App (which holds the Snapshot shown).
pub mod conntrack;
pub mod doctor;
pub mod drops;
pub mod flows;
pub mod footer;
pub mod header;
pub mod help;
pub mod ifaces;
pub mod netfilter;
pub mod path;
pub mod placeholder;
pub mod rates;
pub mod routing;
pub mod sockets;
pub mod tabs;

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Position, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, BorderType},
};

use super::theme::Theme;

/// The frame of a panel; the focused one stands out (colour, or a double border without).
pub fn panel<'a>(title: impl Into<Line<'a>>, focused: bool, theme: Theme) -> Block<'a> {
    let block = Block::bordered().title(title.into().style(theme.title()));
    if focused {
        block
            .border_type(BorderType::Double)
            .border_style(theme.focus())
    } else {
        block.border_style(theme.dim())
    }
}

/// Writes text at positions relative to an area, clipping whatever falls outside it, so
/// hand-drawn figures never write past their panel whatever the terminal size.
pub struct Canvas<'b> {
    pub area: Rect,
    buf: &'b mut Buffer,
}

impl<'b> Canvas<'b> {
    pub fn new(area: Rect, buf: &'b mut Buffer) -> Canvas<'b> {
        Canvas {
            area: area.intersection(buf.area),
            buf,
        }
    }

    pub fn buf_mut(&mut self) -> &mut Buffer {
        self.buf
    }

    pub fn put(&mut self, x: u16, y: u16, text: &str, style: Style) {
        if x >= self.area.width || y >= self.area.height {
            return;
        }
        let room = (self.area.width - x) as usize;
        self.buf
            .set_stringn(self.area.x + x, self.area.y + y, text, room, style);
    }

    /// `text` centred in the `width` columns starting at `x`.
    pub fn put_centered(&mut self, x: u16, y: u16, width: u16, text: &str, style: Style) {
        let len = text.chars().count() as u16;
        self.put(x + width.saturating_sub(len) / 2, y, text, style);
    }

    pub fn line(&mut self, x: u16, y: u16, line: &Line) {
        self.line_n(x, y, line, u16::MAX);
    }

    /// At most `max` columns of `line`.
    pub fn line_n(&mut self, x: u16, y: u16, line: &Line, max: u16) {
        if y >= self.area.height {
            return;
        }
        let room = self.area.width.saturating_sub(x).min(max);
        let at = Position::new(self.area.x + x, self.area.y + y);
        if room > 0 {
            self.buf.set_line(at.x, at.y, line, room);
        }
    }
}

/// A table column: header, width, and the width below which it is left out (wider
/// terminals show more columns, narrow ones the essential ones).
pub struct Column {
    pub header: &'static str,
    pub width: u16,
    /// Lower is kept longer; 0 is always shown.
    pub priority: u8,
}

/// Indexes of the columns that fit in `width` (one space between columns), dropping the
/// lowest-priority ones first, then taking back any dropped one the room left still holds
/// (most important first), in their original order.
pub fn fit_columns(columns: &[Column], width: u16) -> Vec<usize> {
    let mut keep: Vec<usize> = (0..columns.len()).collect();
    let total = |keep: &[usize]| -> u16 { keep.iter().map(|&i| columns[i].width + 1).sum::<u16>() };
    while total(&keep) > width + 1 {
        let Some((pos, _)) = keep
            .iter()
            .enumerate()
            .filter(|(_, i)| columns[**i].priority > 0)
            .max_by_key(|(pos, i)| (columns[**i].priority, *pos))
        else {
            break;
        };
        keep.remove(pos);
    }
    let mut dropped: Vec<usize> = (0..columns.len()).filter(|i| !keep.contains(i)).collect();
    dropped.sort_by_key(|&i| (columns[i].priority, i));
    for i in dropped {
        if total(&keep) + columns[i].width <= width {
            let at = keep.iter().position(|&k| k > i).unwrap_or(keep.len());
            keep.insert(at, i);
        }
    }
    keep
}

pub fn widths(columns: &[Column], keep: &[usize]) -> Vec<Constraint> {
    keep.iter()
        .map(|&i| Constraint::Length(columns[i].width))
        .collect()
}

/// A right-aligned numeric cell.
pub fn num<'a>(text: String, style: Style) -> Line<'a> {
    Line::from(Span::styled(text, style)).right_aligned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_dropped_by_priority_to_fit() {
        let cols = [
            Column {
                header: "a",
                width: 10,
                priority: 0,
            },
            Column {
                header: "b",
                width: 10,
                priority: 2,
            },
            Column {
                header: "c",
                width: 10,
                priority: 1,
            },
        ];
        assert_eq!(fit_columns(&cols, 32), [0, 1, 2]);
        assert_eq!(fit_columns(&cols, 25), [0, 2]);
        let narrow_first = [
            Column {
                header: "a",
                width: 10,
                priority: 0,
            },
            Column {
                header: "b",
                width: 10,
                priority: 1,
            },
            Column {
                header: "c",
                width: 4,
                priority: 1,
            },
        ];
        assert_eq!(
            fit_columns(&narrow_first, 16),
            [0, 2],
            "c fits where b does not"
        );
        assert_eq!(fit_columns(&cols, 5), [0], "priority 0 stays");
    }
}
