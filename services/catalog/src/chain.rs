//! The provider chain: providers asked in the configured order. "Not found"
//! from one moves on to the next; so does a failure (rate limit, refused
//! apikey, outage), which is remembered. The answer is "not found" only when
//! every provider asked said so.

use doumi_proto::catalog::v1::Book;

use crate::{
    deadline::Deadline,
    isbn::Isbn13,
    key::DoubanId,
    provider::{Ask, ProviderError, SearchPage},
    upstream::Upstream,
};

/// Providers in the order they are asked.
pub struct ProviderChain {
    upstreams: Vec<Upstream>,
}

impl ProviderChain {
    pub fn new(upstreams: Vec<Upstream>) -> Self {
        Self { upstreams }
    }

    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    pub async fn by_isbn(&self, isbn: &Isbn13, deadline: Deadline) -> Result<Book, ProviderError> {
        self.first_answer(Ask::Isbn, deadline, |up| {
            up.call(Ask::Isbn, deadline, |p| {
                let isbn = isbn.clone();
                async move { p.by_isbn(&isbn).await }
            })
        })
        .await
    }

    pub async fn by_douban_id(
        &self,
        id: &DoubanId,
        deadline: Deadline,
    ) -> Result<Book, ProviderError> {
        self.first_answer(Ask::DoubanId, deadline, |up| {
            up.call(Ask::DoubanId, deadline, |p| {
                let id = id.clone();
                async move { p.by_douban_id(&id).await }
            })
        })
        .await
    }

    /// A search page from the first provider that can search and answers;
    /// an empty page is an answer too.
    pub async fn search(
        &self,
        query: &str,
        start: u32,
        count: u32,
        deadline: Deadline,
    ) -> Result<SearchPage, ProviderError> {
        self.first_answer(Ask::Search, deadline, |up| {
            up.call(Ask::Search, deadline, |p| {
                let query = query.to_owned();
                async move { p.search(&query, start, count).await }
            })
        })
        .await
    }

    async fn first_answer<'a, T, F, Fut>(
        &'a self,
        ask: Ask,
        deadline: Deadline,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn(&'a Upstream) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut asked_any = false;
        let mut failure = None;
        for upstream in self.upstreams.iter().filter(|u| u.can(ask)) {
            asked_any = true;
            match call(upstream).await {
                Ok(answer) => return Ok(answer),
                Err(ProviderError::NotFound | ProviderError::Unsupported) => {}
                Err(ProviderError::DeadlineExceeded) => {
                    return Err(ProviderError::DeadlineExceeded);
                }
                Err(error) => {
                    tracing::info!(provider = upstream.name(), %error, "falling back to the next provider");
                    failure.get_or_insert(error);
                }
            }
            deadline.check()?;
        }
        match failure {
            // Someone could not answer: the book may well exist there.
            Some(error) => Err(error),
            None if asked_any => Err(ProviderError::NotFound),
            None => Err(ProviderError::Unsupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicU32, Ordering},
        },
        time::Duration,
    };

    use super::*;
    use crate::{provider::BookProvider, upstream::UpstreamPolicy};

    /// Always gives the same answer; counts calls.
    struct Fixed {
        name: &'static str,
        answer: Result<(), ProviderError>,
        calls: AtomicU32,
    }

    #[tonic::async_trait]
    impl BookProvider for Fixed {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn by_isbn(&self, _isbn: &Isbn13) -> Result<Book, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer.clone().map(|()| Book {
                title: self.name.to_owned(),
                ..Book::default()
            })
        }
    }

    fn fixed(name: &'static str, answer: Result<(), ProviderError>) -> Arc<Fixed> {
        Arc::new(Fixed {
            name,
            answer,
            calls: AtomicU32::new(0),
        })
    }

    fn chain(providers: &[Arc<Fixed>]) -> ProviderChain {
        let policy = UpstreamPolicy {
            retries: 0,
            ..UpstreamPolicy::default()
        };
        ProviderChain::new(
            providers
                .iter()
                .map(|p| Upstream::new(p.clone(), policy))
                .collect(),
        )
    }

    fn isbn() -> Isbn13 {
        Isbn13::parse("9780747532699").unwrap()
    }

    #[tokio::test]
    async fn not_found_moves_on_in_order_and_stops_at_the_first_book() {
        let a = fixed("a", Err(ProviderError::NotFound));
        let b = fixed("b", Ok(()));
        let c = fixed("c", Ok(()));
        let book = chain(&[a.clone(), b.clone(), c.clone()])
            .by_isbn(&isbn(), Deadline::NONE)
            .await
            .unwrap();
        assert_eq!(book.title, "b");
        let calls = [&a, &b, &c].map(|p| p.calls.load(Ordering::SeqCst));
        assert_eq!(calls, [1, 1, 0]);
    }

    #[tokio::test]
    async fn only_all_not_found_is_not_found() {
        let all = [
            fixed("a", Err(ProviderError::NotFound)),
            fixed("b", Err(ProviderError::NotFound)),
        ];
        assert!(matches!(
            chain(&all).by_isbn(&isbn(), Deadline::NONE).await,
            Err(ProviderError::NotFound)
        ));
        let limited = [
            fixed("a", Err(ProviderError::RateLimited("112".to_owned()))),
            fixed("b", Err(ProviderError::NotFound)),
        ];
        assert!(matches!(
            chain(&limited).by_isbn(&isbn(), Deadline::NONE).await,
            Err(ProviderError::RateLimited(_))
        ));
    }

    #[tokio::test]
    async fn failures_fall_back() {
        let a = fixed("a", Err(ProviderError::Rejected("105".to_owned())));
        let b = fixed("b", Ok(()));
        let book = chain(&[a, b])
            .by_isbn(&isbn(), Deadline::NONE)
            .await
            .unwrap();
        assert_eq!(book.title, "b");
    }

    #[tokio::test]
    async fn providers_that_cannot_answer_are_skipped() {
        let only_isbn = [fixed("a", Ok(()))];
        let id = DoubanId::parse("6709783").unwrap();
        assert!(matches!(
            chain(&only_isbn).by_douban_id(&id, Deadline::NONE).await,
            Err(ProviderError::Unsupported)
        ));
        assert_eq!(only_isbn[0].calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_asks_nobody() {
        let a = fixed("a", Ok(()));
        let deadline = Deadline::after(Duration::from_millis(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(matches!(
            chain(std::slice::from_ref(&a))
                .by_isbn(&isbn(), deadline)
                .await,
            Err(ProviderError::DeadlineExceeded)
        ));
        assert_eq!(a.calls.load(Ordering::SeqCst), 0);
    }
}
