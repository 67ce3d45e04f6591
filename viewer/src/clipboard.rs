//! The clipboard shared with the local desktop: text copied on either side can be pasted on
//! the other. SDL2 offers text only (its image clipboard came with SDL3), so images stay
//! where they were copied.

use async_rdp::ClientSession;
use sdl2::clipboard::ClipboardUtil;

/// The largest local text offered to the server (the session refuses larger replies anyway).
const MAX_TEXT: usize = 16 << 20;

/// Which text both sides already have, so that setting one side does not echo back.
pub struct SharedClipboard {
    local: ClipboardUtil,
    synced: Option<String>,
}

impl SharedClipboard {
    pub fn new(local: ClipboardUtil) -> Self {
        Self { local, synced: None }
    }

    /// The local clipboard may have changed (an update event, or the window got focus): offers
    /// its text to the server if it is new. Returns the bytes offered.
    pub fn local_changed(&mut self, session: &mut ClientSession) -> async_rdp::Result<Option<usize>> {
        if !self.local.has_clipboard_text() {
            return Ok(None);
        }
        let text = match self.local.clipboard_text() {
            Ok(text) if !text.is_empty() => text,
            Ok(_) => return Ok(None),
            Err(e) => {
                log::debug!("Local clipboard unreadable: {e}");
                return Ok(None);
            }
        };
        if self.synced.as_deref() == Some(text.as_str()) {
            return Ok(None);
        }
        if text.len() > MAX_TEXT {
            // Sizes only: clipboard contents never reach the log.
            log::warn!(
                "Local clipboard text of {} bytes not shared (limit {MAX_TEXT})",
                text.len()
            );
            return Ok(None);
        }
        let len = text.len();
        session.clipboard().set_text(text.clone())?;
        self.synced = Some(text);
        Ok(Some(len))
    }

    /// The server's clipboard changed: asks for its text if it offers some.
    pub fn remote_changed(
        &mut self,
        session: &mut ClientSession,
        formats: &[async_rdp::channels::ClipboardFormat],
    ) -> async_rdp::Result<()> {
        if formats.iter().any(|f| f.is_text()) {
            session.clipboard().request_text()?;
        }
        Ok(())
    }

    /// The server's text arrived: it becomes the local clipboard. Returns the bytes set.
    pub fn remote_text(&mut self, text: String) -> Option<usize> {
        if self.synced.as_deref() == Some(text.as_str()) {
            return None;
        }
        if let Err(e) = self.local.set_clipboard_text(&text) {
            log::warn!("Cannot set the local clipboard: {e}");
            return None;
        }
        let len = text.len();
        self.synced = Some(text);
        Some(len)
    }
}
