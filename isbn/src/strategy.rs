//! Generators of ISBN spellings for property tests (feature `proptest`), so
//! the ISBN rules, the bot and the catalog are all tested against one idea of
//! what readers type and scanners send.
//!
//! Valid ISBNs are built from the definition of the check digit (the one that
//! makes the weighted sum divisible), not from the crate's own formulas, so a
//! slip in those formulas shows up as a failing property.

use proptest::{collection::vec, prelude::*, sample::select};

/// Separators a reader's keyboard or a copied page puts between the groups
/// of an ISBN: hyphens of every width and kind, and spaces including the
/// ideographic space U+3000, NBSP and tabs.
pub const SEPARATORS: &[char] = &[
    '-', '－', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
    '\u{FE63}', ' ', '\u{3000}', '\u{00A0}', '\t',
];

/// Prefixes readers type before either kind of ISBN.
const PREFIXES: &[&str] = &[
    "",
    "ISBN",
    "isbn",
    "Isbn ",
    "ISBN ",
    "ISBN:",
    "ISBN: ",
    "ISBN：",
    "ISBN：\u{3000}",
    "isbn : ",
    "ＩＳＢＮ",
    "ＩＳＢＮ：",
    "ＩＳＢＮ\u{3000}",
];

/// Prefixes only an ISBN-13 carries: WeChat's scan results and the form name.
const PREFIXES_13: &[&str] = &["EAN_13,", "ISBN_13,", "ISBN-13: ", "ISBN13：", "ISBN 13:"];

/// Prefixes only an ISBN-10 carries.
const PREFIXES_10: &[&str] = &["ISBN_10,", "ISBN-10: ", "ISBN10：", "ＩＳＢＮ－１０："];

/// Whitespace around a message that readers and input methods leave.
const PADDING: &[&str] = &["", "", " ", "\u{3000}", "\u{00A0}", "\t", "\n", "  "];

/// A valid ISBN as someone might spell it, and the ISBN-13 it names.
#[derive(Debug, Clone)]
pub struct Spelled {
    /// What the reader typed or the scanner sent.
    pub text: String,
    /// The canonical ISBN-13: 13 ASCII digits.
    pub isbn13: String,
}

/// A valid ISBN, undecorated: `(as written, canonical ISBN-13)`. Half are
/// ISBN-13s (`978`/`979`), half ISBN-10s (some ending in `X`).
pub fn valid_isbn() -> impl Strategy<Value = (String, String)> {
    let thirteen = (any::<bool>(), vec(0..10u32, 9)).prop_map(|(is_979, body)| {
        let mut digits = vec![9, 7, if is_979 { 9 } else { 8 }];
        digits.extend(body);
        let isbn = with_isbn13_check(digits);
        (isbn.clone(), isbn)
    });
    let ten = vec(0..10u32, 9).prop_map(|body| {
        let mut digits = vec![9, 7, 8];
        digits.extend(&body);
        (with_isbn10_check(&body), with_isbn13_check(digits))
    });
    prop_oneof![thirteen, ten]
}

/// A valid ISBN in any spelling the rules accept.
pub fn spelled_isbn() -> impl Strategy<Value = Spelled> {
    valid_isbn().prop_flat_map(|(bare, isbn13)| {
        decorated(&bare).prop_map(move |text| Spelled {
            text,
            isbn13: isbn13.clone(),
        })
    })
}

/// An ISBN with one character mistyped, in any spelling: ISBN-shaped but
/// never valid, because both check digits catch every single substitution.
pub fn mistyped_isbn() -> impl Strategy<Value = String> {
    (valid_isbn(), any::<prop::sample::Index>(), 1..10u32).prop_flat_map(
        |((bare, _), at, delta)| {
            let mut chars: Vec<char> = bare.chars().collect();
            let at = at.index(chars.len());
            chars[at] = match chars[at].to_digit(10) {
                Some(d) => char::from_digit((d + delta) % 10, 10).unwrap_or('X'),
                // An ISBN-10's X (worth 10) becomes a digit (worth 0..9).
                None => char::from_digit(delta, 10).unwrap_or('0'),
            };
            decorated(&chars.into_iter().collect::<String>())
        },
    )
}

/// Text that is sometimes an ISBN, sometimes ISBN-shaped but invalid, and
/// often neither: arbitrary strings, near misses in the ISBN alphabet, digit
/// runs of the wrong length, valid and mistyped spellings.
pub fn isbn_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9０-９XxＸｘ \\-－‐—\u{3000}ISBNisbnＩＳＢＮa:：,_]{0,18}",
        vec(0..10u32, 0..16).prop_flat_map(|digits| {
            decorated(
                &digits
                    .iter()
                    .filter_map(|&d| char::from_digit(d, 10))
                    .collect::<String>(),
            )
        }),
        spelled_isbn().prop_map(|spelled| spelled.text),
        mistyped_isbn(),
    ]
}

/// `bare` (ASCII digits and `X`) with an optional prefix, random separators
/// between its characters, random full-width characters and padding.
fn decorated(bare: &str) -> impl Strategy<Value = String> + use<> {
    let prefixes: Vec<&'static str> = match bare.len() {
        10 => [PREFIXES, PREFIXES_10].concat(),
        13 => [PREFIXES, PREFIXES_13].concat(),
        _ => PREFIXES.to_vec(),
    };
    let gap = prop_oneof![
        3 => Just(String::new()),
        1 => vec(select(SEPARATORS), 1..=2).prop_map(String::from_iter),
    ];
    let chars: Vec<char> = bare.chars().collect();
    (
        select(PADDING),
        select(prefixes),
        vec((any::<u8>(), gap), chars.len()),
        select(PADDING),
    )
        .prop_map(move |(lead, prefix, styles, trail)| {
            let mut text = format!("{lead}{prefix}");
            for (i, (&c, (style, gap))) in chars.iter().zip(styles).enumerate() {
                if i > 0 {
                    text.push_str(&gap);
                }
                text.push(spelled(c, style));
            }
            text.push_str(trail);
            text
        })
}

/// One ISBN character as ASCII or full-width; `X` also in lower case.
fn spelled(c: char, style: u8) -> char {
    let wide = |c: char| char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c);
    match (c, style % 4) {
        ('X', 0) => 'X',
        ('X', 1) => 'x',
        ('X', 2) => wide('X'),
        ('X', _) => wide('x'),
        (_, 0 | 1) => c,
        _ => wide(c),
    }
}

/// `digits` (twelve of them) followed by the digit that makes the ISBN-13
/// weighted sum (weights 1, 3, 1, 3...) divisible by 10.
fn with_isbn13_check(digits: Vec<u32>) -> String {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { 3 * d })
        .sum();
    let check = (0..10).find(|c| (sum + c).is_multiple_of(10));
    digits
        .into_iter()
        .chain(check)
        .filter_map(|d| char::from_digit(d, 10))
        .collect()
}

/// `body` (nine digits) followed by the character that makes the ISBN-10
/// weighted sum (weights 10 down to 1) divisible by 11; 10 is written `X`.
fn with_isbn10_check(body: &[u32]) -> String {
    let sum: u32 = body.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
    let check = (0..=10).find(|c| (sum + c).is_multiple_of(11));
    let mut isbn: String = body
        .iter()
        .filter_map(|&d| char::from_digit(d, 10))
        .collect();
    isbn.extend(check.map(|c| char::from_digit(c, 10).unwrap_or('X')));
    isbn
}
