//! The `doumi.bot.v1.Bot` gRPC service: continue the reader's search when
//! the message is a page or a number, otherwise classify it, ask the catalog
//! when a book is wanted, and always produce something to say.

use doumi_proto::{
    bot::v1::{
        REPLY, Reply, ReplyRequest, ReplyResponse,
        bot_server::{self, Bot},
        inbound_message,
    },
    catalog::v1::Book,
};
use std::{sync::Arc, time::Duration};

use doumi_runtime::{
    grpc::{self, Answering, Answers, Call, Channel},
    metrics::Counters,
    telemetry,
};
use tonic::{Request, Response, Status};
use tracing::{Instrument, field::Empty};

use crate::{
    answer,
    barcode::BarcodeReader,
    catalog_link::{CatalogLink, Missed},
    config::BookReply,
    conversation::{Command, Conversations, Pick, Session},
    intent::{self, Intent},
    rate_limit::ReaderLimiter,
};

/// How many search results fit in one chat message.
const SEARCH_RESULTS: i32 = 5;

/// Time kept back from the caller's deadline to send our own answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(200);

/// The conversation, backed by the catalog.
pub struct BotService {
    catalog: CatalogLink,
    /// Upper bound on a catalog call, whatever the caller allows.
    catalog_timeout: Duration,
    /// Each reader's pace; `None` = no limit.
    limiter: Option<ReaderLimiter>,
    /// Each reader's last search.
    conversations: Conversations,
    /// Reads the barcode on a photo.
    barcodes: BarcodeReader,
    book_reply: BookReply,
    /// Messages by what they ask for.
    intents: Counters<1>,
}

impl BotService {
    pub fn new(
        catalog: Channel,
        catalog_timeout: Duration,
        limiter: Option<ReaderLimiter>,
        conversations: Conversations,
        barcodes: BarcodeReader,
        book_reply: BookReply,
    ) -> Self {
        Self {
            intents: Counters::new(crate::metrics::INTENTS, ["intent"], Vec::new()),
            catalog: CatalogLink::new(catalog),
            catalog_timeout,
            limiter,
            conversations,
            barcodes,
            book_reply,
        }
    }

    /// True when `reader` may ask the catalog now.
    async fn within_pace(&self, reader: &str) -> bool {
        match &self.limiter {
            Some(limiter) => limiter.allow(reader).await,
            None => true,
        }
    }

    /// A single book, as a card or as text.
    fn book(&self, book: &Book) -> Reply {
        match self.book_reply {
            BookReply::Card => {
                answer::book_card(book).map_or_else(|| Reply::text(answer::book(book)), Reply::news)
            }
            BookReply::Text => Reply::text(answer::book(book)),
        }
    }

    async fn lookup(&self, isbn: String, deadline: Duration) -> Reply {
        match self.catalog.book_by_isbn(&isbn, deadline).await {
            Ok(book) => self.book(&book),
            Err(Missed::NotFound) => Reply::text(answer::isbn_not_found(&isbn)),
            Err(Missed::Invalid) => Reply::text(answer::invalid_isbn(&isbn)),
            Err(Missed::Failed(sentence)) => Reply::text(sentence),
        }
    }

    /// A search result without an ISBN, by its Douban id.
    async fn by_id(&self, id: String, deadline: Duration) -> Reply {
        match self.catalog.book_by_id(id, deadline).await {
            Ok(book) => self.book(&book),
            Err(Missed::NotFound | Missed::Invalid) => Reply::text(answer::cannot_open()),
            Err(Missed::Failed(sentence)) => Reply::text(sentence),
        }
    }

    /// A new search: its first page, remembered for 「下一页」 and numbers.
    async fn search(&self, reader: &str, query: String, deadline: Duration) -> Reply {
        self.show_page(reader, Session::new(&query), 0, deadline)
            .await
    }

    /// Page `index` of the reader's search, numbered on from the pages before.
    async fn show_page(
        &self,
        reader: &str,
        mut session: Session,
        index: usize,
        deadline: Duration,
    ) -> Reply {
        let token = session
            .pages
            .get(index)
            .map(|page| page.token.clone())
            .unwrap_or_default();
        let searched = self
            .catalog
            .search(session.query.clone(), token, SEARCH_RESULTS, deadline)
            .await;
        let page = match searched {
            Ok(page) => page,
            Err(Missed::NotFound | Missed::Invalid) => Default::default(),
            Err(Missed::Failed(sentence)) => return Reply::text(sentence),
        };
        if page.books.is_empty() {
            return Reply::text(if index == 0 {
                answer::search_not_found(&session.query)
            } else {
                answer::no_more_results(&session.query)
            });
        }
        let picks = page.books.iter().map(pick).collect();
        session.show(index, picks, page.next_page_token);
        let first = session.pages.get(index).map_or(0, |page| page.first);
        let text = answer::search_results(
            &session.query,
            &page.books,
            page.total_size,
            first,
            session.has_next(),
            index > 0,
        );
        self.conversations.put(reader, session).await;
        Reply::text(text)
    }

    /// A photo: the book whose barcode it shows, looked up like a typed ISBN.
    async fn photo(&self, reader: &str, pic_url: &str, deadline: Duration) -> Reply {
        // Reading a photo costs more than a lookup: it counts against the pace.
        if !self.within_pace(reader).await {
            return Reply::text(answer::too_fast());
        }
        match self.barcodes.read(pic_url).await {
            Ok(isbn) => self.lookup(isbn, deadline).await,
            Err(error) => Reply::text(answer::photo_not_read(&error)),
        }
    }

    /// A page or a number, continuing the reader's last search.
    async fn continue_search(
        &self,
        reader: &str,
        mut session: Session,
        command: Command,
        deadline: Duration,
    ) -> Reply {
        match command {
            Command::Next => match session.next_page() {
                Some(index) => self.show_page(reader, session, index, deadline).await,
                None => Reply::text(answer::no_more_results(&session.query)),
            },
            Command::Previous => match session.previous_page() {
                Some(index) => self.show_page(reader, session, index, deadline).await,
                None => Reply::text(answer::first_page_already()),
            },
            // Opening a book counts against the reader's pace like a typed
            // ISBN; turning the pages of a search (cached) does not.
            Command::Open(n) => {
                let pick = session.pick(n).cloned();
                let reply = match pick {
                    Some(Pick::Isbn(_) | Pick::DoubanId(_)) if !self.within_pace(reader).await => {
                        Reply::text(answer::too_fast())
                    }
                    Some(Pick::Isbn(isbn)) => self.lookup(isbn, deadline).await,
                    Some(Pick::DoubanId(id)) => self.by_id(id, deadline).await,
                    Some(Pick::Unknown) => Reply::text(answer::cannot_open()),
                    None => Reply::text(answer::no_such_number(session.picks.len())),
                };
                // The reader is still on it: remember the search as long again.
                self.conversations.put(reader, session).await;
                reply
            }
        }
    }

    /// What the reader's message asks for, answered. Every way but a lookup
    /// by ISBN is boxed: this future is part of the one the server boxes for
    /// each call, so it is as large as its largest branch, copied whole.
    async fn answer(
        &self,
        message: &doumi_proto::bot::v1::InboundMessage,
        deadline: Duration,
    ) -> Reply {
        let reader = message.from_user.as_str();
        let span = tracing::Span::current();
        if let Some(command) = command_in(message)
            && let Some(session) = self.conversations.get(reader).await
        {
            let label = match command {
                Command::Open(_) => "open",
                Command::Next | Command::Previous => "page",
            };
            span.record("intent", label);
            self.intents.increment([label]);
            return Box::pin(self.continue_search(reader, session, command, deadline)).await;
        }
        if let Some(inbound_message::Kind::Image(image)) = &message.kind {
            span.record("intent", "photo");
            self.intents.increment(["photo"]);
            return Box::pin(self.photo(reader, &image.pic_url, deadline)).await;
        }
        let intent = intent::classify(message);
        span.record("intent", intent.label());
        self.intents.increment([intent.label()]);
        match intent {
            Intent::Welcome => Reply::text(answer::welcome()),
            Intent::Help => Reply::text(answer::help()),
            Intent::Unsupported => Reply::text(answer::unsupported()),
            // Refused here by the rules the catalog applies: no call, no pace.
            Intent::InvalidIsbn(written) => Reply::text(answer::invalid_isbn(&written)),
            Intent::LookupIsbn(_) | Intent::Search(_) if !self.within_pace(reader).await => {
                Reply::text(answer::too_fast())
            }
            Intent::LookupIsbn(isbn) => self.lookup(isbn.to_string(), deadline).await,
            Intent::Search(query) => Box::pin(self.search(reader, query, deadline)).await,
            Intent::Ignore => Reply::none(),
        }
    }
}

/// A page or a number in a text message (or said aloud, with recognition on).
fn command_in(message: &doumi_proto::bot::v1::InboundMessage) -> Option<Command> {
    match &message.kind {
        Some(inbound_message::Kind::Text(text)) => Command::parse(&text.content),
        Some(inbound_message::Kind::Voice(voice)) => Command::parse(&voice.recognition),
        _ => None,
    }
}

/// What a search result's number opens.
fn pick(book: &Book) -> Pick {
    if !book.isbn13.is_empty() {
        Pick::Isbn(book.isbn13.clone())
    } else if !book.id.is_empty() {
        Pick::DoubanId(book.id.clone())
    } else {
        Pick::Unknown
    }
}

#[tonic::async_trait]
impl Bot for BotService {
    async fn reply(
        &self,
        request: Request<ReplyRequest>,
    ) -> Result<Response<ReplyResponse>, Status> {
        // The catalog gets what is left of the caller's deadline, less the
        // time needed to send our answer back, so an apology still arrives in time.
        let deadline = doumi_runtime::grpc::caller_deadline(request.metadata().as_ref())
            .earlier_by(ANSWER_MARGIN)
            .cap(self.catalog_timeout);
        let message = request
            .into_inner()
            .message
            .ok_or_else(|| Status::invalid_argument("message is missing"))?;
        let span = tracing::info_span!(
            "reply",
            // The gateway's name for the official account (configured
            // names only): which account a reader wrote to.
            account = %message.account,
            reader = %telemetry::pseudonym(&message.from_user),
            intent = Empty,
        );
        let reply = self.answer(&message, deadline).instrument(span).await;
        Ok(Response::new(ReplyResponse { reply: Some(reply) }))
    }
}

/// The bot's one method answered directly (`doumi_runtime::grpc::answer`).
impl Answers for BotService {
    const NAME: &'static str = bot_server::SERVICE_NAME;

    fn answer(self: Arc<Self>, call: Call) -> Answering {
        Box::pin(async move {
            if call.uri().path() != REPLY.path {
                return grpc::unimplemented();
            }
            grpc::answer(call, |request| self.reply(request)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use doumi_proto::bot::v1::{InboundMessage, Text};
    use doumi_runtime::grpc::{DialSettings, Target};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the WARN lines written while it is the default subscriber.
    struct Warnings(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A bot whose catalog is a port nobody listens on: every call fails at once.
    fn with_a_dead_catalog() -> BotService {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target: Target = format!("ipv4:{}", dead.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(dead);
        let channel = doumi_runtime::grpc::channel(&target, DialSettings::DEFAULT);
        BotService::new(
            channel,
            Duration::from_secs(2),
            None,
            Conversations::new(None),
            BarcodeReader::new(vec![crate::config::DEFAULT_IMAGE_HOSTS.to_owned()]).unwrap(),
            BookReply::Text,
        )
    }

    async fn reply_to(bot: &BotService, reader: &str, content: &str) -> Reply {
        let message = InboundMessage {
            from_user: reader.to_owned(),
            msg_id: 1,
            kind: Some(inbound_message::Kind::Text(Text {
                content: content.to_owned(),
            })),
            ..Default::default()
        };
        let request = Request::new(ReplyRequest {
            message: Some(message),
        });
        bot.reply(request)
            .await
            .unwrap()
            .into_inner()
            .reply
            .unwrap()
    }

    #[tokio::test]
    async fn an_invalid_isbn_is_answered_without_asking_the_catalog() {
        let warnings = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Warnings(warnings.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let bot = with_a_dead_catalog();
        for wrong in ["9787121139513", "978-7-121-13951-3", "7115282828"] {
            assert_eq!(
                reply_to(&bot, "oHasty", wrong).await,
                Reply::text(answer::invalid_isbn(wrong)),
                "the reader hears the ISBN is wrong, not that the catalog is down"
            );
        }
        assert_eq!(
            warnings.load(Ordering::Relaxed),
            0,
            "no catalog call failed"
        );
    }

    #[tokio::test]
    async fn a_dead_catalog_writes_a_line_per_minute_not_one_per_message() {
        let warnings = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Warnings(warnings.clone()));
        let _default = tracing::subscriber::set_default(subscriber);

        let bot = with_a_dead_catalog();
        let messages = 50;
        for msg_id in 1..=messages {
            let message = InboundMessage {
                from_user: format!("oReader{msg_id}"),
                msg_id,
                kind: Some(inbound_message::Kind::Text(Text {
                    content: "9787121139512".to_owned(),
                })),
                ..Default::default()
            };
            let reply = bot
                .reply(Request::new(ReplyRequest {
                    message: Some(message),
                }))
                .await
                .unwrap()
                .into_inner()
                .reply
                .unwrap();
            assert_eq!(
                reply,
                Reply::text(answer::apology()),
                "every reader hears why"
            );
        }
        let written = warnings.load(Ordering::Relaxed);
        assert!(
            (1..=3).contains(&written),
            "{written} WARN lines for {messages} failed lookups in well under a minute"
        );
    }
}
