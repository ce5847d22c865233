//! Bounded ISO-BMFF reading (init and media segments) and fMP4 media-segment writing.

pub(crate) mod build;
pub(crate) mod init;
pub(crate) mod reader;
pub(crate) mod segment;
pub(crate) mod write;
