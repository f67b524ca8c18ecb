//! doumi's integration tests, one module per concern a user would notice,
//! in one test binary: each binary links the whole stack, so one of them
//! (instead of one per file) is what keeps the suite's build short.

mod barcode_photo;
mod catalog;
mod conversation;
mod end_to_end;
mod gateway_protocol;
mod isbn_spellings;
mod late_delivery;
mod manifests;
mod observability;
mod overload;
mod reader_pace;
mod settings;
mod traces;
