//! The glyph table both 7-segment displays share, and how text becomes digit positions:
//! `0-9`, `-`, `E`, `H`, `L`, `P`, space, and `r`, `n` (which the original intended but
//! showed blank, its lookup upper-casing them: §15.12), in either case; any other
//! character is blank. A `.` lights the decimal point of the character before it (a `.`
//! with none before it, or after another `.`, takes a blank position of its own).
//!
//! A mask has one bit per segment: a = bit 0 ... g = bit 6, dp = bit 7.
//!
//! ```text
//!   aaa
//!  f   b
//!   ggg
//!  e   c
//!   ddd  dp
//! ```

pub const A: u8 = 1;
pub const B: u8 = 1 << 1;
pub const C: u8 = 1 << 2;
pub const D: u8 = 1 << 3;
pub const E: u8 = 1 << 4;
pub const F: u8 = 1 << 5;
pub const G: u8 = 1 << 6;
pub const DP: u8 = 1 << 7;

/// The segment names in bit order, as `segment_pins` keys them.
pub const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "dp"];

/// Every character with a glyph, and its segments.
const TABLE: [(char, u8); 18] = [
    ('0', A | B | C | D | E | F),
    ('1', B | C),
    ('2', A | B | D | E | G),
    ('3', A | B | C | D | G),
    ('4', B | C | F | G),
    ('5', A | C | D | F | G),
    ('6', A | C | D | E | F | G),
    ('7', A | B | C),
    ('8', A | B | C | D | E | F | G),
    ('9', A | B | C | D | F | G),
    ('-', G),
    ('E', A | D | E | F | G),
    ('H', B | C | E | F | G),
    ('L', D | E | F),
    ('P', A | B | E | F | G),
    (' ', 0),
    ('r', E | G),
    ('n', C | E | G),
];

/// The segments of `c` (no decimal point); `None` for a character without a glyph.
pub fn known(c: char) -> Option<u8> {
    let c = match c {
        'R' => 'r',
        'N' => 'n',
        'r' | 'n' => c,
        c => c.to_ascii_uppercase(),
    };
    TABLE.iter().find(|(g, _)| *g == c).map(|(_, m)| *m)
}

/// The segments of `c`; blank for a character without a glyph.
pub fn glyph(c: char) -> u8 {
    known(c).unwrap_or(0)
}

/// The character a mask shows (its decimal point aside); `?` for a pattern no glyph has.
pub fn decode(mask: u8) -> char {
    let m = mask & !DP;
    TABLE.iter().find(|(_, g)| *g == m).map_or('?', |(c, _)| *c)
}

/// The digit positions of `text`, left to right, each a mask (dp included).
pub fn positions(text: &str) -> impl Iterator<Item = u8> + '_ {
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || {
        let c = chars.next()?;
        if c == '.' {
            return Some(DP);
        }
        let mut m = glyph(c);
        if chars.peek() == Some(&'.') {
            chars.next();
            m |= DP;
        }
        Some(m)
    })
}

/// `text` right-aligned into `out` (blank on the left). `Err(n)`: it needs `n`
/// positions, more than `out` has; `out` is left as it was.
pub fn layout(text: &str, out: &mut [u8]) -> Result<(), usize> {
    let n = positions(text).count();
    if n > out.len() {
        return Err(n);
    }
    let blank = out.len() - n;
    out[..blank].fill(0);
    for (slot, m) in out[blank..].iter_mut().zip(positions(text)) {
        *slot = m;
    }
    Ok(())
}

/// Like [`layout`], for a value that may not fit (a sink's rendering): too long, it keeps
/// its first positions if the decimal point is among them (only decimals are lost),
/// else shows dashes (the magnitude would be wrong).
pub fn fit(text: &str, out: &mut [u8]) {
    if layout(text, out).is_ok() {
        return;
    }
    let mut point = false;
    for (slot, m) in out.iter_mut().zip(positions(text)) {
        *slot = m;
        point |= m & DP != 0;
    }
    if !point {
        out.fill(G);
    }
}

/// What `masks` show, as text: each position's character with `.` after it for a lit
/// decimal point, blank positions at either end left out (`"12.3"`).
pub fn text_of(masks: &[u8]) -> String {
    let mut s = String::new();
    for &m in masks {
        s.push(if m & !DP == 0 { ' ' } else { decode(m) });
        if m & DP != 0 {
            s.push('.');
        }
    }
    s.trim_matches(' ').to_string()
}

/// The characters of `text` shown blank for want of a glyph (for the tools' answers).
pub fn unknown(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter(|&c| c != '.' && known(c).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_glyphs_with_r_and_n_working() {
        assert_eq!(glyph('8'), 0x7F);
        assert_eq!(glyph('0'), 0x3F);
        assert_eq!(glyph('1'), B | C);
        assert_eq!(glyph('7'), 0x07);
        assert_eq!(glyph('-'), G);
        assert_eq!(glyph('r'), E | G);
        assert_eq!(glyph('R'), E | G, "not blank, as the original showed it");
        assert_eq!(glyph('n'), C | E | G);
        assert_eq!(glyph('N'), C | E | G);
        assert_eq!(glyph('e'), glyph('E'));
        assert_eq!(glyph('h'), B | C | E | F | G);
        assert_eq!(glyph('P'), 0x73);
        assert_eq!(glyph(' '), 0);
        assert_eq!(glyph('X'), 0, "unknown is blank");
        assert_eq!(glyph('°'), 0);
        // Every glyph decodes back to its character.
        for (c, m) in TABLE {
            assert_eq!(decode(m), c);
            assert_eq!(decode(m | DP), c);
        }
        assert_eq!(decode(A | G), '?');
        assert_eq!(
            text_of(&[0, glyph('1'), glyph('2') | DP, glyph('3')]),
            "12.3"
        );
        assert_eq!(text_of(&[DP, 0, 0, 0]), ".");
        assert_eq!(text_of(&[0; 4]), "");
        assert_eq!(unknown("Err 4X°").collect::<String>(), "X°");
    }

    #[test]
    fn a_point_joins_the_character_before_it_and_text_is_right_aligned() {
        let mut out = [0xFF; 4];
        layout("12.3", &mut out).unwrap();
        assert_eq!(out, [0, glyph('1'), glyph('2') | DP, glyph('3')]);
        layout(".5", &mut out).unwrap();
        assert_eq!(out, [0, 0, DP, glyph('5')]);
        layout("1..", &mut out).unwrap();
        assert_eq!(out, [0, 0, glyph('1') | DP, DP]);
        layout("", &mut out).unwrap();
        assert_eq!(out, [0; 4]);
        layout("Err", &mut out).unwrap();
        assert_eq!(out, [0, glyph('E'), E | G, E | G]);
        let before = out;
        assert_eq!(layout("12345", &mut out), Err(5));
        assert_eq!(out, before, "too long changes nothing");
        assert_eq!(layout("1.2.3.4.", &mut out), Ok(()));
        let mut one = [0u8; 1];
        layout("7.", &mut one).unwrap();
        assert_eq!(one, [glyph('7') | DP]);
        assert_eq!(layout("7.5", &mut one), Err(2));
    }

    #[test]
    fn a_value_too_long_loses_decimals_never_magnitude() {
        let mut out = [0u8; 4];
        fit("1234.56", &mut out);
        assert_eq!(out, [glyph('1'), glyph('2'), glyph('3'), glyph('4') | DP]);
        fit("12345", &mut out);
        assert_eq!(out, [G; 4]);
        fit("21.75", &mut out);
        assert_eq!(out, [glyph('2'), glyph('1') | DP, glyph('7'), glyph('5')]);
        let mut one = [0u8; 1];
        fit("21", &mut one);
        assert_eq!(one, [G]);
        fit("3.7", &mut one);
        assert_eq!(one, [glyph('3') | DP]);
    }
}
