//! doumi's gRPC contracts. The `.proto` files under `doumi/` are the source of
//! truth; everything here is generated from them at build time.
#![forbid(unsafe_code)]

/// `doumi.catalog.v1`: the book catalog API other teams build on.
pub mod catalog {
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("doumi.catalog.v1");

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
