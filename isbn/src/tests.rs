use proptest::prelude::*;

use super::*;
use crate::strategy::{SEPARATORS, isbn_like_text, mistyped_isbn, spelled_isbn, valid_isbn};

/// Real books: (ISBN-13, ISBN-10).
const PAIRS: &[(&str, &str)] = &[
    ("9787121139512", "7121139510"),
    ("9787115282828", "711528282X"),
    ("9787111127482", "711112748X"),
    ("9787544242516", "754424251X"),
    ("9787020042494", "702004249X"),
    ("9787505715660", "7505715666"),
    ("9780306406157", "0306406152"),
];

const WAVE: &str = "9787121139512";
const BEAUTY: &str = "9787115282828";

fn canonical(input: &str) -> Result<String, IsbnError> {
    Isbn13::parse(input).map(|isbn| isbn.as_str().to_owned())
}

#[test]
fn isbn10_and_isbn13_agree_both_ways() {
    for (thirteen, ten) in PAIRS {
        assert_eq!(canonical(ten).as_deref(), Ok(*thirteen), "{ten}");
        assert_eq!(
            Isbn13::parse(thirteen).map(|isbn| isbn.to_isbn10()),
            Ok(Some((*ten).to_owned()))
        );
    }
}

#[test]
fn every_spelling_of_an_isbn13_readers_type() {
    for input in [
        "9787121139512",
        " 9787121139512 ",
        "978-7-121-13951-2",
        "978－7－121－13951－2",
        "９７８－７－１２１－１３９５１－２",
        "９７８７１２１１３９５１２",
        "978 7 121 13951 2",
        "978\u{3000}7\u{3000}121\u{3000}13951\u{3000}2",
        "\u{3000}9787121139512\u{3000}",
        "978\u{00A0}7\u{00A0}121\u{00A0}13951\u{00A0}2",
        "978\t7121139512",
        "978\u{2010}7\u{2010}121\u{2010}13951\u{2010}2",
        "978\u{2011}7\u{2011}121\u{2011}13951\u{2011}2",
        "978\u{2012}7\u{2012}121\u{2012}13951\u{2012}2",
        "978\u{2013}7\u{2013}121\u{2013}13951\u{2013}2",
        "978\u{2014}7\u{2014}121\u{2014}13951\u{2014}2",
        "978\u{2015}7\u{2015}121\u{2015}13951\u{2015}2",
        "978\u{2212}7\u{2212}121\u{2212}13951\u{2212}2",
        "978‐7‐121‐13951‐2",
        "978 - 7 - 121 - 13951 - 2",
        "ISBN 978-7-121-13951-2",
        "ISBN：978 7 121 13951 2",
        "ISBN:9787121139512",
        "isbn 9787121139512",
        "ISBN9787121139512",
        "ＩＳＢＮ：９７８７１２１１３９５１２",
        "ＩＳＢＮ　978-7-121-13951-2",
        "ISBN-13: 978-7-121-13951-2",
        "ISBN 13：9787121139512",
        "EAN_13,9787121139512",
        "ISBN_13,9787121139512",
    ] {
        assert_eq!(canonical(input).as_deref(), Ok(WAVE), "{input:?}");
        assert_eq!(
            read(input)
                .map(|r| r.map(|i| i.0))
                .as_ref()
                .map(Result::as_deref),
            Some(Ok(WAVE))
        );
    }
}

#[test]
fn every_spelling_of_an_isbn10_readers_type() {
    for input in [
        "711528282X",
        "711528282x",
        "711528282Ｘ",
        "711528282ｘ",
        "７１１５２８２８２Ｘ",
        "7-115-28282-X",
        "7－115－28282－Ｘ",
        "7\u{2013}115\u{2013}28282\u{2013}X",
        "7\u{3000}115\u{3000}28282\u{3000}X",
        "ISBN 7-115-28282-X",
        "ISBN：7115282 82X",
        "isbn:711528282x",
        "ＩＳＢＮ７１１５２８２８２Ｘ",
        "ISBN-10: 7-115-28282-X",
        "ISBN_10,711528282X",
    ] {
        assert_eq!(canonical(input).as_deref(), Ok(BEAUTY), "{input:?}");
    }
    assert_eq!(canonical("7-121-13951-0").as_deref(), Ok(WAVE));
    // "10" after "ISBN" without a colon is the start of the number.
    assert_eq!(canonical("ISBN 1000000001").as_deref(), Ok("9781000000009"));
}

#[test]
fn bad_isbns_say_what_is_wrong() {
    assert_eq!(Isbn13::parse(""), Err(IsbnError::Empty));
    assert_eq!(Isbn13::parse("ISBN："), Err(IsbnError::Empty));
    assert_eq!(
        Isbn13::parse("97871210703898"),
        Err(IsbnError::WrongLength(14))
    );
    assert_eq!(
        Isbn13::parse("978-7121-1395"),
        Err(IsbnError::WrongLength(11))
    );
    assert_eq!(
        Isbn13::parse("978-7-121-13951-3"),
        Err(IsbnError::BadIsbn13Check("9787121139513".to_owned()))
    );
    assert_eq!(
        Isbn13::parse("９７８－７－１２１－１３９５１－３"),
        Err(IsbnError::BadIsbn13Check("9787121139513".to_owned()))
    );
    assert_eq!(
        Isbn13::parse("7121139511"),
        Err(IsbnError::BadIsbn10Check("7121139511".to_owned()))
    );
    assert_eq!(
        Isbn13::parse("7115282828"),
        Err(IsbnError::BadIsbn10Check("7115282828".to_owned()))
    );
    assert_eq!(
        Isbn13::parse("9771234567898"),
        Err(IsbnError::NotBookland("9771234567898".to_owned()))
    );
    assert_eq!(
        Isbn13::parse("71211X9510"),
        Err(IsbnError::BadCharacter('X'))
    );
    assert_eq!(
        Isbn13::parse("978712113951X"),
        Err(IsbnError::BadCharacter('X'))
    );
    assert_eq!(
        Isbn13::parse("978a121139512"),
        Err(IsbnError::BadCharacter('a'))
    );
    assert_eq!(
        Isbn13::parse("浪潮之巅"),
        Err(IsbnError::BadCharacter('浪'))
    );
    assert_eq!(
        Isbn13::parse("978.7.121.13951.2"),
        Err(IsbnError::BadCharacter('.'))
    );
    assert!(Isbn13::parse("9787121139513").is_err_and(|e| e.to_string().contains("check digit")));
}

#[test]
fn read_tells_isbn_attempts_from_other_text() {
    assert_eq!(read("9787121139512").map(|r| r.is_ok()), Some(true));
    // ISBN-shaped, but wrong: the reader should hear why.
    for attempt in [
        "978-7-121-13951-3",
        "７１２１１３９５１１",
        "9771234567898",
        "978712113951X",
        "ISBN 7115282828",
    ] {
        assert!(matches!(read(attempt), Some(Err(_))), "{attempt:?}");
    }
    // Not ISBN-shaped: a title, a year, a phone number, a stray X.
    for other in [
        "",
        "   ",
        "浪潮之巅",
        "1984",
        "ISBN",
        "978-7121-1395",
        "97871211395120",
        "71211X9510",
        "X",
        "1234567890abc",
        "ISBN 13 9787121139512",
    ] {
        assert_eq!(read(other), None, "{other:?}");
    }
}

#[test]
fn isbn_979_has_no_isbn10() {
    assert_eq!(
        Isbn13::parse("9791032305690").map(|isbn| isbn.to_isbn10()),
        Ok(None)
    );
}

#[test]
fn the_generators_spell_what_the_issue_lists() {
    for c in [
        '-', '－', '\u{2010}', '\u{2015}', '\u{2212}', '\u{3000}', '\u{00A0}', '\t',
    ] {
        assert!(SEPARATORS.contains(&c), "{c:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_spelling_of_a_valid_isbn_parses_to_its_isbn13(spelled in spelled_isbn()) {
        prop_assert_eq!(canonical(&spelled.text), Ok(spelled.isbn13.clone()));
        prop_assert_eq!(
            read(&spelled.text).map(|r| r.map(|isbn| isbn.0)),
            Some(Ok(spelled.isbn13))
        );
    }

    #[test]
    fn the_canonical_form_reads_back_as_itself((bare, isbn13) in valid_isbn()) {
        let isbn = Isbn13::parse(&bare);
        prop_assert_eq!(isbn.as_ref().map(Isbn13::as_str), Ok(isbn13.as_str()));
        prop_assert_eq!(canonical(&isbn13), Ok(isbn13.clone()));
        if bare.len() == 10 {
            prop_assert_eq!(isbn.map(|isbn| isbn.to_isbn10()), Ok(Some(bare)));
        }
    }

    #[test]
    fn a_mistyped_isbn_is_an_invalid_isbn_not_a_search(text in mistyped_isbn()) {
        prop_assert!(matches!(read(&text), Some(Err(_))), "{:?}: {:?}", text, read(&text));
    }

    #[test]
    fn parse_and_read_never_disagree(text in isbn_like_text()) {
        match read(&text) {
            Some(reading) => prop_assert_eq!(Isbn13::parse(&text), reading),
            None => prop_assert!(Isbn13::parse(&text).is_err()),
        }
    }
}
