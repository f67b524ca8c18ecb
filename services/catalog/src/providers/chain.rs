//! The provider chain: providers asked in the configured order. "Not found"
//! from one moves on to the next; so does a failure (rate limit, refused
//! apikey, outage), which is remembered. The answer is "not found" only when
//! every provider asked said so.

use doumi_proto::catalog::v1::Book;

use doumi_runtime::deadline::Deadline;

use crate::{
    isbn::Isbn13,
    key::DoubanId,
    providers::provider::{Ask, ProviderError, SearchPage, SearchQuery},
    providers::upstream::Upstream,
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

    /// A search page from the first provider that can search and finds
    /// something, by the same rules as ISBN lookups: a provider with no books
    /// for the query is treated like one that does not know an ISBN (the next
    /// one is asked), and a failing one is skipped and remembered. So with
    /// Douban configured but blocked, Open Library and then Google Books still
    /// answer.
    ///
    /// The answer is an empty page (not NOT_FOUND: a search with no matches
    /// is still a list) only when every provider that searched found
    /// nothing; when one of them failed instead, its failure is the answer,
    /// as for ISBNs, because the books may well be there.
    ///
    /// Each page goes through the chain on its own, so while a provider is
    /// failing (or past its last result) the next pages may come from the
    /// one after it.
    pub async fn search(
        &self,
        search: &SearchQuery,
        deadline: Deadline,
    ) -> Result<SearchPage, ProviderError> {
        let found = self
            .first_answer(Ask::Search, deadline, |up| async move {
                let page = up
                    .call(Ask::Search, deadline, |p| {
                        let search = search.clone();
                        async move { p.search(&search).await }
                    })
                    .await?;
                if page.books.is_empty() {
                    Err(ProviderError::NotFound)
                } else {
                    Ok(page)
                }
            })
            .await;
        match found {
            Err(ProviderError::NotFound) => Ok(SearchPage::default()),
            other => other,
        }
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
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::providers::{fake::FakeProvider, provider::BookProvider, upstream::UpstreamPolicy};

    fn fixed(name: &'static str, answer: Result<(), ProviderError>) -> Arc<FakeProvider> {
        Arc::new(FakeProvider::named(name).answering(answer))
    }

    fn chain(providers: &[Arc<FakeProvider>]) -> ProviderChain {
        let policy = UpstreamPolicy {
            retries: 0,
            ..UpstreamPolicy::default()
        };
        ProviderChain::new(
            providers
                .iter()
                .map(|p| Upstream::new(p.clone(), policy, None))
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
        let calls = [&a, &b, &c].map(|p| p.calls());
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
        assert_eq!(only_isbn[0].calls(), 0);
    }

    /// A provider that only searches: a page of `titles`, or down (`None`).
    fn searcher(name: &'static str, titles: Option<&'static [&'static str]>) -> Arc<FakeProvider> {
        let page = titles.ok_or_else(|| ProviderError::Unavailable("HTTP 503".to_owned()));
        Arc::new(FakeProvider::named(name).searching(page))
    }

    fn search_chain(first: Arc<dyn BookProvider>, rest: &[Arc<FakeProvider>]) -> ProviderChain {
        let policy = UpstreamPolicy {
            retries: 0,
            ..UpstreamPolicy::default()
        };
        let mut upstreams = vec![Upstream::new(first, policy, None)];
        upstreams.extend(rest.iter().map(|p| Upstream::new(p.clone(), policy, None)));
        ProviderChain::new(upstreams)
    }

    async fn titles(chain: &ProviderChain) -> Result<Vec<String>, ProviderError> {
        let page = chain
            .search(&SearchQuery::new("mistborn", 0, 10), Deadline::NONE)
            .await?;
        Ok(page.books.into_iter().map(|b| b.title).collect())
    }

    #[tokio::test]
    async fn search_moves_on_from_no_results_and_failures_like_isbn_lookups() {
        // One that cannot search is not asked; an empty page moves on.
        let isbn_only = fixed("isbn-only", Ok(()));
        let empty = searcher("empty", Some(&[]));
        let full = searcher("full", Some(&["The Final Empire"]));
        let after = searcher("after", Some(&["never asked"]));
        let chain = search_chain(
            isbn_only.clone(),
            &[empty.clone(), full.clone(), after.clone()],
        );
        assert_eq!(titles(&chain).await.unwrap(), ["The Final Empire"]);
        let calls = [&empty, &full, &after].map(|p| p.calls());
        assert_eq!(calls, [1, 1, 0]);
        assert_eq!(isbn_only.calls(), 0);

        // A failing one is skipped.
        let down = searcher("down", None);
        let chain = search_chain(down, &[searcher("up", Some(&["The Hero of Ages"]))]);
        assert_eq!(titles(&chain).await.unwrap(), ["The Hero of Ages"]);
    }

    #[tokio::test]
    async fn search_is_empty_only_when_everyone_searched_and_found_nothing() {
        let chain = search_chain(searcher("a", Some(&[])), &[searcher("b", Some(&[]))]);
        let page = chain
            .search(&SearchQuery::new("nothing", 0, 10), Deadline::NONE)
            .await
            .unwrap();
        assert!(page.books.is_empty() && page.total == 0);

        // Someone could not search: the books may be there.
        let chain = search_chain(searcher("a", None), &[searcher("b", Some(&[]))]);
        assert!(matches!(
            titles(&chain).await,
            Err(ProviderError::Unavailable(_))
        ));

        // Nobody can search at all.
        let chain = search_chain(fixed("isbn-only", Ok(())), &[]);
        assert!(matches!(
            titles(&chain).await,
            Err(ProviderError::Unsupported)
        ));
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
        assert_eq!(a.calls(), 0);
    }
}
