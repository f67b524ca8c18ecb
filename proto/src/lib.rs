//! doumi's gRPC contracts. The `.proto` files under `doumi/` are the source of
//! truth; everything here is generated from them at build time.
#![forbid(unsafe_code)]

use std::marker::PhantomData;

/// A unary method as doumi's own services call it: its path, and the types
/// of its request and answer, so a call cannot pair one method's request
/// with another's answer.
pub struct Unary<Request, Answer> {
    /// `/package.Service/Method`, as it goes on the wire.
    pub path: &'static str,
    types: PhantomData<fn(Request) -> Answer>,
}

impl<Request, Answer> Unary<Request, Answer> {
    pub const fn new(path: &'static str) -> Self {
        Self {
            path,
            types: PhantomData,
        }
    }
}

/// `doumi.catalog.v1`: the book catalog API other teams build on.
pub mod catalog {
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("doumi.catalog.v1");

        /// The catalog's methods, as the bot calls them and the catalog
        /// answers them.
        pub const GET_BOOK_BY_ISBN: crate::Unary<GetBookByIsbnRequest, GetBookByIsbnResponse> =
            crate::Unary::new("/doumi.catalog.v1.BookCatalog/GetBookByIsbn");
        pub const GET_BOOK: crate::Unary<GetBookRequest, GetBookResponse> =
            crate::Unary::new("/doumi.catalog.v1.BookCatalog/GetBook");
        pub const SEARCH_BOOKS: crate::Unary<SearchBooksRequest, SearchBooksResponse> =
            crate::Unary::new("/doumi.catalog.v1.BookCatalog/SearchBooks");
        pub const BATCH_GET_BOOKS_BY_ISBN: crate::Unary<
            BatchGetBooksByIsbnRequest,
            BatchGetBooksByIsbnResponse,
        > = crate::Unary::new("/doumi.catalog.v1.BookCatalog/BatchGetBooksByIsbn");

        /// Encoded descriptors of `doumi.catalog.v1`, for gRPC reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/catalog_descriptor.bin"));
    }
}

/// `doumi.bot.v1`: the conversation API between the gateway and the bot.
pub mod bot {
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("doumi.bot.v1");

        /// The bot's one method, which the gateway calls and the bot answers.
        pub const REPLY: crate::Unary<ReplyRequest, ReplyResponse> =
            crate::Unary::new("/doumi.bot.v1.Bot/Reply");

        /// Encoded descriptors of `doumi.bot.v1`, for gRPC reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/bot_descriptor.bin"));

        /// The replies the bot and the gateway make, built in one place.
        impl Reply {
            /// A text message.
            pub fn text(content: impl Into<String>) -> Self {
                Self {
                    kind: Some(reply::Kind::Text(TextReply {
                        content: content.into(),
                    })),
                }
            }

            /// Nothing to say: WeChat gets `success` and shows nothing.
            pub fn none() -> Self {
                Self {
                    kind: Some(reply::Kind::None(NoReply {})),
                }
            }

            /// A news reply with one article (all a passive reply may carry).
            pub fn news(article: Article) -> Self {
                Self {
                    kind: Some(reply::Kind::News(NewsReply {
                        articles: vec![article],
                    })),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The paths are the generated services' own.
    #[test]
    fn unary_paths_name_the_served_methods() {
        use crate::{bot::v1 as bot, catalog::v1 as catalog};
        let catalog_service = catalog::book_catalog_server::SERVICE_NAME;
        for (path, method) in [
            (catalog::GET_BOOK_BY_ISBN.path, "GetBookByIsbn"),
            (catalog::GET_BOOK.path, "GetBook"),
            (catalog::SEARCH_BOOKS.path, "SearchBooks"),
            (catalog::BATCH_GET_BOOKS_BY_ISBN.path, "BatchGetBooksByIsbn"),
        ] {
            assert_eq!(path, format!("/{catalog_service}/{method}"));
        }
        let bot_service = bot::bot_server::SERVICE_NAME;
        assert_eq!(bot::REPLY.path, format!("/{bot_service}/Reply"));
    }
}
