//! The bot's own series, beside the process and gRPC ones every service has.

use std::sync::Once;

/// Messages by what the bot took them to mean.
pub const INTENTS: &str = "doumi_bot_intents_total";
/// Lookups refused because one reader asked too fast.
pub const RATE_LIMITED: &str = "doumi_bot_rate_limited_total";
/// Photos of a barcode by outcome: `isbn` or a `BarcodeError::outcome` label.
pub const BARCODE_READS: &str = "doumi_bot_barcode_reads_total";
/// Every series of the bot's own.
pub const NAMES: &[&str] = &[INTENTS, RATE_LIMITED, BARCODE_READS];

/// Installs the process-wide recorder and describes the bot's series, once.
pub fn install() {
    static DESCRIBED: Once = Once::new();
    doumi_runtime::metrics::describe_once(&DESCRIBED, || {
        metrics::describe_counter!(INTENTS, "Messages by what the bot took them to mean");
        metrics::describe_counter!(
            RATE_LIMITED,
            "Lookups refused because the reader asked faster than DOUMI_READER_RATE_LIMIT"
        );
        metrics::describe_counter!(
            BARCODE_READS,
            "Photos read for a book's barcode, by outcome (isbn, no_barcode, not_an_isbn, fetch_failed, ...)"
        );
    });
}
