//! What the bot remembers of a reader's last search, so the reader can page
//! through it (「下一页」, 「上一页」) and open a result by its number instead
//! of copying a 13-digit ISBN.
//!
//! A session is keyed by the reader's OpenID and forgotten after
//! [`SESSION_TTL`] of silence. With Redis it lives there, so whichever bot
//! replica gets the reader's next message continues the conversation;
//! without Redis (or while it fails) this process keeps it. A number from a
//! reader with no session is an ordinary query: it can never open another
//! reader's result, because nothing but the reader's own OpenID finds a
//! session.

use std::{sync::Arc, time::Duration};

use doumi_runtime::redis::SharedRedis;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

/// How long a search is remembered after the reader's last message about it.
pub const SESSION_TTL: Duration = Duration::from_secs(10 * 60);
/// Readers whose search this process remembers at most (without Redis).
const REMEMBERED_READERS: u64 = 100_000;
/// Pages of one search a reader may walk through; past it 「下一页」 says
/// the list ends here (a reader this deep should search more precisely).
pub const MAX_PAGES: usize = 10;
/// The longest query kept, in bytes (the reader's own words).
const MAX_QUERY_BYTES: usize = 256;

/// What a reader may send to continue a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 「下一页」, 「更多」, 「n」.
    Next,
    /// 「上一页」.
    Previous,
    /// A result's number, as shown (1-based).
    Open(usize),
}

impl Command {
    /// The command in a text message, if it is one; anything else is an
    /// ordinary message.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_end_matches(['。', '.', '！', '!']);
        match text {
            "下一页" | "下页" | "更多" | "n" | "N" | "next" | "Next" => {
                return Some(Self::Next);
            }
            "上一页" | "上页" | "p" | "P" | "prev" => return Some(Self::Previous),
            _ => {}
        }
        // A result's number, typed in either width: 「7」 or 「７」.
        if text.is_empty() || text.chars().count() > 2 {
            return None;
        }
        let mut number = 0;
        for c in text.chars() {
            let digit = match c {
                '0'..='9' => c.to_digit(10),
                '０'..='９' => char::from_u32(u32::from(c) - 0xFF10 + u32::from('0'))
                    .and_then(|c| c.to_digit(10)),
                _ => None,
            }?;
            number = number * 10 + usize::try_from(digit).ok()?;
        }
        (number > 0).then_some(Self::Open(number))
    }
}

/// The book a result's number opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pick {
    Isbn(String),
    /// A Douban subject id, for a book without an ISBN.
    DoubanId(String),
    /// Neither: the result can be shown in the list but not opened.
    Unknown,
}

/// One page of results as the reader was shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMark {
    /// The catalog's token for this page (empty for the first).
    pub token: String,
    /// How many results come before it: its first number is `first + 1`.
    pub first: usize,
}

/// A reader's last search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub query: String,
    /// Every page shown so far, in order.
    pub pages: Vec<PageMark>,
    /// The page on screen, an index into `pages`.
    pub current: usize,
    /// The catalog's token for the page after the last one shown; empty
    /// when there is none.
    pub next_token: String,
    /// What each number shown so far opens: number `n` is `picks[n - 1]`.
    pub picks: Vec<Pick>,
}

impl Session {
    /// A search just answered with its first page.
    pub fn new(query: &str) -> Self {
        let mut end = query.len().min(MAX_QUERY_BYTES);
        while !query.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            query: query[..end].to_owned(),
            pages: vec![PageMark {
                token: String::new(),
                first: 0,
            }],
            current: 0,
            next_token: String::new(),
            picks: Vec::new(),
        }
    }

    /// Records the results of page `index` (already in `pages`), and the
    /// token of the page after it when it is the last one shown.
    pub fn show(&mut self, index: usize, picks: Vec<Pick>, next_token: String) {
        let Some(first) = self.pages.get(index).map(|page| page.first) else {
            return;
        };
        self.current = index;
        // Numbers shown on other pages keep what they open.
        let end = (first + picks.len()).min(self.picks.len()).max(first);
        if self.picks.len() < first {
            self.picks.resize(first, Pick::Unknown);
        }
        self.picks.splice(first..end, picks);
        if index + 1 == self.pages.len() {
            self.next_token = next_token;
        }
    }

    /// The page after the current one, appended to `pages` when it is new;
    /// `None` when the results end here.
    pub fn next_page(&mut self) -> Option<usize> {
        let next = self.current + 1;
        if next < self.pages.len() {
            return Some(next);
        }
        if self.next_token.is_empty() || self.pages.len() >= MAX_PAGES {
            return None;
        }
        let first = self.pages[self.current].first + self.shown_on(self.current);
        self.pages.push(PageMark {
            token: std::mem::take(&mut self.next_token),
            first,
        });
        Some(next)
    }

    /// The page before the current one; `None` on the first page.
    pub fn previous_page(&self) -> Option<usize> {
        self.current.checked_sub(1)
    }

    /// Whether a page follows the current one.
    pub fn has_next(&self) -> bool {
        self.current + 1 < self.pages.len()
            || (!self.next_token.is_empty() && self.pages.len() < MAX_PAGES)
    }

    /// How many results page `index` showed.
    fn shown_on(&self, index: usize) -> usize {
        let first = self.pages.get(index).map_or(0, |page| page.first);
        match self.pages.get(index + 1) {
            Some(next) => next.first - first,
            None => self.picks.len().saturating_sub(first),
        }
    }

    /// What number `n` opens, if it was shown.
    pub fn pick(&self, n: usize) -> Option<&Pick> {
        self.picks.get(n.checked_sub(1)?)
    }
}

/// Every reader's last search; cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    inner: Arc<Inner>,
}

struct Inner {
    local: moka::sync::Cache<String, Session>,
    shared: Option<SharedRedis>,
}

impl Conversations {
    /// `shared`: share sessions across replicas; `None` = this process alone.
    pub fn new(shared: Option<SharedRedis>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: moka::sync::Cache::builder()
                    .max_capacity(REMEMBERED_READERS)
                    .time_to_idle(SESSION_TTL)
                    .build(),
                shared,
            }),
        }
    }

    /// `reader`'s last search, if it is still remembered. While Redis is
    /// away, what this process remembers: a search made on another replica
    /// meanwhile is not seen, and one made here is seen only here.
    pub async fn get(&self, reader: &str) -> Option<Session> {
        if let Some(shared) = &self.inner.shared {
            let key = key(reader);
            let stored = shared
                .call("reading a conversation", |mut c| async move {
                    c.get::<_, Option<Vec<u8>>>(key).await
                })
                .await;
            if let Some(stored) = stored {
                return stored.and_then(|bytes| serde_json::from_slice(&bytes).ok());
            }
        }
        self.inner.local.get(reader)
    }

    /// Remembers `session` as `reader`'s last search: in Redis, or in this
    /// process while Redis is away.
    pub async fn put(&self, reader: &str, session: Session) {
        if let (Some(shared), Ok(bytes)) = (&self.inner.shared, serde_json::to_vec(&session)) {
            let key = key(reader);
            let stored = shared
                .call("storing a conversation", |mut c| async move {
                    c.set_ex::<_, _, ()>(key, bytes, SESSION_TTL.as_secs())
                        .await
                })
                .await;
            if stored.is_some() {
                return;
            }
        }
        self.inner.local.insert(reader.to_owned(), session);
    }
}

fn key(reader: &str) -> String {
    format!("doumi:conversation:{reader}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_in_every_shape_readers_type() {
        for next in ["下一页", "更多", "n", " N ", "下一页。"] {
            assert_eq!(Command::parse(next), Some(Command::Next), "{next}");
        }
        assert_eq!(Command::parse("上一页"), Some(Command::Previous));
        assert_eq!(Command::parse("7"), Some(Command::Open(7)));
        assert_eq!(Command::parse("７"), Some(Command::Open(7)));
        assert_eq!(Command::parse("12"), Some(Command::Open(12)));
        for not_a_command in ["0", "123", "9787121139512", "吴军", "n1", ""] {
            assert_eq!(Command::parse(not_a_command), None, "{not_a_command}");
        }
    }

    fn isbns(from: usize, count: usize) -> Vec<Pick> {
        (from..from + count)
            .map(|i| Pick::Isbn(format!("isbn-{i}")))
            .collect()
    }

    #[test]
    fn numbers_continue_across_pages_and_back() {
        let mut session = Session::new("吴军");
        session.show(0, isbns(1, 5), "page-2".into());
        assert!(session.has_next());
        let second = session.next_page();
        assert_eq!(second, Some(1));
        assert_eq!(session.pages[1].token, "page-2");
        session.show(1, isbns(6, 5), "page-3".into());
        assert_eq!(session.pick(7), Some(&Pick::Isbn("isbn-7".into())));
        assert_eq!(session.pick(3), Some(&Pick::Isbn("isbn-3".into())));
        assert_eq!(session.pick(11), None);
        assert_eq!(session.pick(0), None);

        // Back to page 1 and forward again: the same numbers, no new page.
        assert_eq!(session.previous_page(), Some(0));
        session.show(0, isbns(1, 5), String::new());
        assert_eq!(session.pick(7), Some(&Pick::Isbn("isbn-7".into())));
        assert_eq!(session.next_page(), Some(1));
        assert_eq!(session.pages.len(), 2);
        assert_eq!(
            session.next_token, "page-3",
            "the last page's next token is kept"
        );
        assert_eq!(Session::new("x").previous_page(), None);
    }

    #[test]
    fn the_last_page_has_no_next_and_pages_are_bounded() {
        let mut session = Session::new("吴军");
        session.show(0, isbns(1, 3), String::new());
        assert!(!session.has_next());
        assert_eq!(session.next_page(), None);

        let mut deep = Session::new("a");
        deep.show(0, isbns(1, 5), "t".into());
        for page in 1..MAX_PAGES {
            assert_eq!(deep.next_page(), Some(page));
            deep.show(page, isbns(page * 5 + 1, 5), "t".into());
        }
        assert_eq!(deep.next_page(), None);
        assert_eq!(deep.picks.len(), MAX_PAGES * 5);
    }

    #[test]
    fn long_queries_are_cut_on_a_character_boundary() {
        let session = Session::new(&"书".repeat(200));
        assert!(session.query.len() <= MAX_QUERY_BYTES);
        assert!(session.query.chars().all(|c| c == '书'));
    }
}
