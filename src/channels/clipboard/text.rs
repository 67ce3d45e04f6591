//! Clipboard text: [`ClipboardText`], and the decoding of the protocol's text formats.

use ironrdp_cliprdr::pdu::ClipboardFormatId;

/// Clipboard text from the server. Its `Debug` shows the length, not the text, so that
/// logging an [`Event`](crate::Event) never puts clipboard contents in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ClipboardText(pub(super) String);

impl ClipboardText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for ClipboardText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClipboardText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClipboardText(<{} characters>)", self.0.chars().count())
    }
}

/// Clipboard data as text: UTF-16LE for `CF_UNICODETEXT` (surrogate pairs joined, unpaired
/// ones replaced), bytes as UTF-8 (replacing what is not) otherwise; the terminating NULs
/// go.
pub(super) fn decode_text(format: Option<ClipboardFormatId>, data: &[u8]) -> String {
    let text = match format {
        Some(ClipboardFormatId::CF_UNICODETEXT) => {
            let units: Vec<u16> = data.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    text.trim_end_matches('\0').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_text_keeps_every_plane() {
        let text = "é 漢字 😀";
        let mut data: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        data.extend_from_slice(&[0, 0]);
        assert_eq!(decode_text(Some(ClipboardFormatId::CF_UNICODETEXT), &data), text);
        // An odd trailing byte and an unpaired surrogate do not panic.
        assert_eq!(
            decode_text(Some(ClipboardFormatId::CF_UNICODETEXT), &[0x3d, 0xd8, 0x41]),
            "\u{fffd}"
        );
        assert_eq!(decode_text(Some(ClipboardFormatId::CF_TEXT), b"plain\0"), "plain");
    }

    #[test]
    fn debug_never_shows_the_text() {
        let text = ClipboardText("secret".into());
        assert_eq!(format!("{text:?}"), "ClipboardText(<6 characters>)");
    }
}
