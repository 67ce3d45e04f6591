//! The session's queue of decoded audio, bounded by how long it plays: past the cap, the
//! oldest audio is dropped, so that a slow application loses sound, not memory or sync.

use std::collections::VecDeque;
use std::time::Duration;

use super::{AudioChunk, AudioSink};

#[derive(Debug)]
pub(super) struct AudioQueue {
    chunks: VecDeque<AudioChunk>,
    /// Samples of the front chunk a sink already took.
    taken: usize,
    cap: Duration,
    dropped_frames: u64,
}

impl AudioQueue {
    pub(super) fn new(cap: Duration) -> Self {
        Self {
            chunks: VecDeque::new(),
            taken: 0,
            cap,
            dropped_frames: 0,
        }
    }

    pub(super) fn cap(&self) -> Duration {
        self.cap
    }

    pub(super) fn set_cap(&mut self, cap: Duration) {
        self.cap = cap;
    }

    pub(super) fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// How long the queued audio plays.
    pub(super) fn duration(&self) -> Duration {
        let front = self.chunks.front().map_or(Duration::ZERO, |chunk| {
            let channels = usize::from(chunk.format().channels.max(1));
            chunk.format().duration(self.taken / channels)
        });
        let all = self.chunks.iter().map(AudioChunk::duration).sum::<Duration>();
        all.saturating_sub(front)
    }

    /// Queues `chunk`, first dropping the oldest audio that would take the queue past its cap;
    /// returns the frames dropped.
    pub(super) fn push(&mut self, chunk: AudioChunk) -> usize {
        let mut dropped = 0;
        while !self.chunks.is_empty() && self.duration().saturating_add(chunk.duration()) > self.cap {
            dropped += self.pop().map_or(0, |c| c.frames());
        }
        self.dropped_frames = self
            .dropped_frames
            .saturating_add(u64::try_from(dropped).unwrap_or(u64::MAX));
        self.chunks.push_back(chunk);
        dropped
    }

    /// The oldest chunk, without what a sink already took of it.
    pub(super) fn pop(&mut self) -> Option<AudioChunk> {
        let chunk = self.chunks.pop_front()?;
        let taken = std::mem::take(&mut self.taken);
        if taken == 0 {
            return Some(chunk);
        }
        let (format, timestamp) = (chunk.format(), chunk.timestamp());
        let rest = chunk.samples().get(taken..).unwrap_or_default().to_vec();
        Some(AudioChunk::new(format, rest, timestamp))
    }

    /// Gives `sink` what it takes, oldest first; returns the frames it took.
    pub(super) fn play_into(&mut self, sink: &mut impl AudioSink) -> std::io::Result<usize> {
        let mut written = 0;
        while let Some(chunk) = self.chunks.front() {
            let channels = usize::from(chunk.format().channels.max(1));
            let rest = chunk.samples().get(self.taken..).unwrap_or_default();
            let frames = sink.write(chunk.format(), rest)?.min(rest.len() / channels);
            written += frames;
            self.taken += frames * channels;
            if self.taken < chunk.samples().len() {
                break;
            }
            self.chunks.pop_front();
            self.taken = 0;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::super::PcmFormat;
    use super::*;

    const MONO_1K: PcmFormat = PcmFormat {
        sample_rate: 1000,
        channels: 1,
    };

    /// `ms` milliseconds of mono at 1 kHz, every sample `value`.
    fn chunk(ms: usize, value: i16) -> AudioChunk {
        AudioChunk::new(MONO_1K, vec![value; ms], 0)
    }

    /// Takes at most `room` frames per write.
    struct Sink {
        room: usize,
        got: Vec<i16>,
    }

    impl AudioSink for Sink {
        fn write(&mut self, _format: PcmFormat, samples: &[i16]) -> std::io::Result<usize> {
            let n = samples.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&samples[..n]);
            Ok(n)
        }
    }

    #[test]
    fn past_the_cap_the_oldest_audio_is_dropped() {
        let mut queue = AudioQueue::new(Duration::from_millis(50));
        assert_eq!(queue.push(chunk(20, 1)), 0);
        assert_eq!(queue.push(chunk(20, 2)), 0);
        assert_eq!(queue.push(chunk(20, 3)), 20);
        assert_eq!(queue.duration(), Duration::from_millis(40));
        assert_eq!(queue.dropped_frames(), 20);
        assert_eq!(queue.pop().map(|c| c.samples()[0]), Some(2));
        // One wave is kept even when it alone is over the cap.
        let mut queue = AudioQueue::new(Duration::ZERO);
        assert_eq!(queue.push(chunk(20, 1)), 0);
        assert_eq!(queue.push(chunk(20, 2)), 20);
        assert_eq!(queue.duration(), Duration::from_millis(20));
    }

    #[test]
    fn a_sink_takes_what_it_can_and_the_rest_waits() {
        let mut queue = AudioQueue::new(Duration::from_secs(1));
        queue.push(chunk(20, 1));
        queue.push(chunk(20, 2));
        let mut sink = Sink {
            room: 30,
            got: Vec::new(),
        };
        assert_eq!(queue.play_into(&mut sink).ok(), Some(30));
        assert_eq!(queue.duration(), Duration::from_millis(10));
        sink.room = 100;
        assert_eq!(queue.play_into(&mut sink).ok(), Some(10));
        assert_eq!(sink.got, [vec![1; 20], vec![2; 20]].concat());
        assert!(queue.pop().is_none());
        // What a sink left of a chunk is what pop returns.
        queue.push(chunk(20, 3));
        sink.room = 5;
        queue.play_into(&mut sink).ok();
        assert_eq!(queue.pop().map(|c| c.frames()), Some(15));
    }
}
