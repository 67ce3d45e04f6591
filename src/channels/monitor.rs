//! Monitor layouts: the client's monitors as the server should lay out the remote desktop, at
//! connection time (GCC monitor data) or later through display control.

use ironrdp_displaycontrol::pdu::{
    DisplayControlMonitorLayout, MonitorLayoutEntry, MonitorOrientation as DisplayOrientation,
};
use ironrdp_pdu::gcc::{self, ClientMonitorData, ClientMonitorExtendedData, ExtendedMonitorInfo, MonitorFlags};

use crate::{Error, ErrorKind, Result};

/// How a monitor is turned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Orientation {
    /// Not turned.
    #[default]
    Landscape,
    /// Turned 90°.
    Portrait,
    /// Turned 180°.
    LandscapeFlipped,
    /// Turned 270°.
    PortraitFlipped,
}

/// One monitor of a layout, in pixels on the virtual desktop: exactly one is primary and sits
/// at (0, 0); the others touch it or each other and do not overlap ([MS-RDPEDISP] 2.2.2.2).
///
/// ```
/// use async_rdp::channels::Monitor;
///
/// let left = Monitor::primary(1920, 1080);
/// let right = Monitor::at(1920, 0, 1280, 1024).with_scale(125);
/// assert_eq!((right.left, right.width, right.scale), (1920, 1280, 125));
/// # let _ = left;
/// ```
///
/// [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Monitor {
    /// Left edge.
    pub left: i32,
    /// Top edge.
    pub top: i32,
    /// Width (even, 200..=8192 once adjusted).
    pub width: u32,
    /// Height (200..=8192 once adjusted).
    pub height: u32,
    /// Whether this is the primary monitor.
    pub primary: bool,
    /// Desktop scale factor in percent (100: none; 100..=500).
    pub scale: u32,
    /// How the monitor is turned.
    pub orientation: Orientation,
}

impl Monitor {
    /// The primary monitor, at (0, 0).
    pub fn primary(width: u32, height: u32) -> Self {
        Self {
            primary: true,
            ..Self::at(0, 0, width, height)
        }
    }

    /// A secondary monitor at (`left`, `top`).
    pub fn at(left: i32, top: i32, width: u32, height: u32) -> Self {
        Self {
            left,
            top,
            width,
            height,
            primary: false,
            scale: 100,
            orientation: Orientation::Landscape,
        }
    }

    /// The same monitor with a desktop scale factor, in percent.
    #[must_use]
    pub fn with_scale(mut self, percent: u32) -> Self {
        self.scale = percent;
        self
    }

    /// The same monitor, turned.
    #[must_use]
    pub fn with_orientation(mut self, orientation: Orientation) -> Self {
        self.orientation = orientation;
        self
    }

    /// The size adjusted as [MS-RDPEDISP] 2.2.2.2.1 requires (even width, 200..=8192 each way).
    ///
    /// [MS-RDPEDISP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-rdpedisp/
    pub fn adjusted(mut self) -> Self {
        (self.width, self.height) = MonitorLayoutEntry::adjust_display_size(self.width, self.height);
        self.scale = MonitorLayoutEntry::adjust_desktop_scale_factor(self.scale);
        self
    }

    fn entry(self) -> std::result::Result<MonitorLayoutEntry, ironrdp_core::EncodeError> {
        let entry = if self.primary {
            MonitorLayoutEntry::new_primary(self.width, self.height)?
        } else {
            MonitorLayoutEntry::new_secondary(self.width, self.height)?.with_position(self.left, self.top)?
        };
        let orientation = match self.orientation {
            Orientation::Landscape => DisplayOrientation::Landscape,
            Orientation::Portrait => DisplayOrientation::Portrait,
            Orientation::LandscapeFlipped => DisplayOrientation::LandscapeFlipped,
            Orientation::PortraitFlipped => DisplayOrientation::PortraitFlipped,
        };
        entry
            .with_orientation(orientation)
            .with_desktop_scale_factor(self.scale)
    }
}

/// A layout for display control: every monitor adjusted and checked.
pub(crate) fn display_layout(monitors: &[Monitor]) -> Result<DisplayControlMonitorLayout> {
    let entries = monitors
        .iter()
        .map(|m| m.adjusted().entry())
        .collect::<std::result::Result<Vec<_>, _>>()
        .and_then(|entries| DisplayControlMonitorLayout::new(&entries))
        .map_err(|e| invalid_layout(&e.to_string()))?;
    Ok(entries)
}

/// The layout as GCC monitor data for the connection sequence, and the size of the desktop that
/// covers it.
pub(crate) fn gcc_layout(monitors: &[Monitor]) -> Result<(ClientMonitorData, ClientMonitorExtendedData, (u16, u16))> {
    // The same rules as for display control, checked the same way.
    let layout = display_layout(monitors)?;
    let (width, height) = layout.desktop_size();
    let size = (
        u16::try_from(width).map_err(|_| invalid_layout("wider than 65535 pixels"))?,
        u16::try_from(height).map_err(|_| invalid_layout("taller than 65535 pixels"))?,
    );
    let adjusted: Vec<Monitor> = monitors.iter().map(|m| m.adjusted()).collect();
    let to_i32 = |v: u32| i32::try_from(v).map_err(|_| invalid_layout("a monitor over i32::MAX pixels"));
    let mut data = Vec::with_capacity(adjusted.len());
    for m in &adjusted {
        data.push(gcc::Monitor {
            left: m.left,
            top: m.top,
            right: m.left + to_i32(m.width)? - 1,
            bottom: m.top + to_i32(m.height)? - 1,
            flags: if m.primary {
                MonitorFlags::PRIMARY
            } else {
                MonitorFlags::empty()
            },
        });
    }
    let extended = adjusted
        .iter()
        .map(|m| ExtendedMonitorInfo {
            physical_width: 0,
            physical_height: 0,
            orientation: match m.orientation {
                Orientation::Landscape => gcc::MonitorOrientation::Landscape,
                Orientation::Portrait => gcc::MonitorOrientation::Portrait,
                Orientation::LandscapeFlipped => gcc::MonitorOrientation::LandscapeFlipped,
                Orientation::PortraitFlipped => gcc::MonitorOrientation::PortraitFlipped,
            },
            desktop_scale_factor: m.scale,
            device_scale_factor: 100,
        })
        .collect();
    Ok((
        ClientMonitorData { monitors: data },
        ClientMonitorExtendedData {
            extended_monitors_info: extended,
        },
        size,
    ))
}

fn invalid_layout(why: &str) -> Error {
    Error::new(ErrorKind::InvalidInput, "monitor layout").with_detail(format!(
        "{why} (one primary monitor at (0, 0); the others adjacent, not overlapping; at most 16)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_monitors_side_by_side() {
        let monitors = [Monitor::primary(1025, 768), Monitor::at(1024, 0, 800, 600)];
        let layout = display_layout(&monitors).unwrap();
        assert_eq!(layout.desktop_size(), (1824, 768));
        let (data, extended, size) = gcc_layout(&monitors).unwrap();
        assert_eq!(size, (1824, 768));
        assert_eq!(
            data.monitors[0].right, 1023,
            "odd width rounded down, inclusive right edge"
        );
        assert_eq!(data.monitors[1].flags, MonitorFlags::empty());
        assert_eq!(extended.extended_monitors_info.len(), 2);
    }

    #[test]
    fn bad_layouts_say_why() {
        for bad in [
            vec![],
            vec![Monitor::at(0, 0, 800, 600)],
            vec![Monitor::primary(800, 600), Monitor::primary(800, 600)],
            vec![Monitor::primary(800, 600), Monitor::at(400, 0, 800, 600)],
            vec![Monitor::primary(800, 600), Monitor::at(5000, 0, 800, 600)],
        ] {
            let e = display_layout(&bad).expect_err(&format!("{bad:?}"));
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }
}
