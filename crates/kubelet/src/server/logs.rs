//! Container logs as `kubectl logs` reads them: the CRI log files containerd writes
//! (`<RFC 3339 time> <stdout|stderr> <P|F> <text>` a line, `P` for a partial line the runtime
//! split) turned back into the container's output, with upstream's options — `tailLines`,
//! `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`, `follow` — as its kuberuntime log
//! reader applies them. Parsing and filtering are pure ([`parse_line`], [`LogWriter`]); [`stream`]
//! reads a file and follows it while the container runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Which of the container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// The time as written (RFC 3339 with nanoseconds).
    pub time: &'a str,
    /// Its parsed value.
    pub timestamp: Timestamp,
    /// The stream.
    pub stream: Stream,
    /// `P`: the runtime split a long line and more of it follows.
    pub partial: bool,
    /// The text, without the line's newline.
    pub content: &'a [u8],
}

/// Why a line is not a CRI log line.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer than the four fields.
    #[error("log line has too few fields: {0:?}")]
    Fields(String),
    /// The time does not parse.
    #[error("unexpected timestamp format {0:?}")]
    Time(String),
    /// The stream is neither stdout nor stderr.
    #[error("unexpected stream type {0:?}")]
    Stream(String),
    /// The tag is not `P` or `F` (tags may carry more after a `:`).
    #[error("unexpected tag {0:?}")]
    Tag(String),
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<LogLine<'_>, ParseError> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut fields = line.splitn(4, |b| *b == b' ');
    let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(ParseError::Fields(text(line)));
    };
    // A line of an empty write has no text and may have no space after the tag.
    let content = fields.next().unwrap_or_default();
    let time = std::str::from_utf8(time).map_err(|_| ParseError::Time(text(time)))?;
    let timestamp: Timestamp = time.parse().map_err(|_| ParseError::Time(time.into()))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => return Err(ParseError::Stream(text(other))),
    };
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(ParseError::Tag(text(tag))),
    };
    Ok(LogLine {
        time,
        timestamp,
        stream,
        partial,
        content,
    })
}

/// The options of a log request (upstream's `PodLogOptions` as the kubelet gets them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming while the container runs.
    pub follow: bool,
    /// The previous instance of the container.
    pub previous: bool,
    /// Only lines at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only the last this many lines (none: all).
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// From the request's query (`follow`, `previous`, `sinceSeconds`, `sinceTime`,
    /// `timestamps`, `tailLines`, `limitBytes`), as of `now`. Errors name the bad parameter.
    pub fn from_query(query: &str, now: Timestamp) -> Result<LogOptions, String> {
        let mut options = LogOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let flag = || ferry_api::query::parse_bool(&value);
            let number = |name: &str| {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("invalid {name} {value:?}"))
            };
            match key.as_ref() {
                "follow" => options.follow = flag(),
                "previous" => options.previous = flag(),
                "timestamps" => options.timestamps = flag(),
                // Negative: everything, as upstream.
                "tailLines" => options.tail_lines = u64::try_from(number("tailLines")?).ok(),
                "limitBytes" => {
                    let limit = number("limitBytes")?;
                    if limit < 1 {
                        return Err("limitBytes must be greater than zero".into());
                    }
                    options.limit_bytes = u64::try_from(limit).ok();
                }
                "sinceSeconds" => {
                    let seconds = number("sinceSeconds")?;
                    if seconds < 1 {
                        return Err("sinceSeconds must be greater than zero".into());
                    }
                    options.since = now
                        .checked_sub(jiff::SignedDuration::from_secs(seconds))
                        .ok();
                }
                "sinceTime" => {
                    options.since = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid sinceTime {value:?}"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(options)
    }
}

/// Where the lines to send start: the offset of the last `tail` lines of `data` (every line
/// ends with a newline; a last line without one is still being written and counts too).
pub fn tail_offset(data: &[u8], tail: Option<u64>) -> usize {
    let Some(tail) = tail else { return 0 };
    if tail == 0 {
        return data.len();
    }
    let mut end = data.len();
    if data.last() == Some(&b'\n') {
        end -= 1;
    }
    let mut seen = 0;
    for (i, b) in data[..end].iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == tail {
                return i + 1;
            }
        }
    }
    0
}

/// Turns CRI lines into the container's output under the options, as upstream's log writer:
/// partial lines joined (a time prefix only where a line starts), lines before `since`
/// dropped, output cut at `limitBytes`.
#[derive(Debug)]
pub struct LogWriter {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
    /// The last line written of each stream was partial: its continuation gets no prefix.
    open: [bool; 2],
}

impl LogWriter {
    /// A writer for `options`.
    pub fn new(options: &LogOptions) -> Self {
        LogWriter {
            since: options.since,
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
            open: [false; 2],
        }
    }

    /// The limit was reached: nothing more will be written.
    pub fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The output for one file line (malformed lines are skipped, as upstream logs and skips them).
    pub fn write(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let Ok(line) = parse_line(raw) else {
            return;
        };
        if self.since.is_some_and(|since| line.timestamp < since) {
            return;
        }
        let index = match line.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        let start = out.len();
        if self.timestamps && !self.open[index] {
            out.extend_from_slice(line.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line.content);
        if !line.partial {
            out.push(b'\n');
        }
        self.open[index] = line.partial;
        if let Some(remaining) = &mut self.remaining {
            let written = (out.len() - start) as u64;
            if written >= *remaining {
                out.truncate(start + *remaining as usize);
                *remaining = 0;
            } else {
                *remaining -= written;
            }
        }
    }

    /// The output for a run of whole lines.
    pub fn write_all(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for raw in data.split(|b| *b == b'\n') {
            if self.done() {
                return;
            }
            if !raw.is_empty() {
                self.write(raw, out);
            }
        }
    }
}

/// How often a followed file is checked for more lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Sends the log at `path` under `options` to `out`, in chunks; with `follow`, keeps reading
/// what is appended until `running` says the container stopped and everything is sent, the
/// limit is reached, or the receiver is gone (the client left). A file the runtime replaced
/// (rotation) is read from its start.
pub async fn stream<F, Fut>(
    path: PathBuf,
    options: LogOptions,
    out: tokio::sync::mpsc::Sender<Bytes>,
    mut running: F,
) -> std::io::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut writer = LogWriter::new(&options);
    let mut file = tokio::fs::File::open(&path).await?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).await?;
    let start = tail_offset(&data, options.tail_lines);
    let mut pending = data.split_off(start);
    let mut identity = file_identity(&path);
    loop {
        // Whole lines only; a line still being written waits for its newline.
        let whole = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        if whole > 0 {
            let mut chunk = Vec::with_capacity(whole);
            writer.write_all(&pending[..whole], &mut chunk);
            pending.drain(..whole);
            if !chunk.is_empty() && out.send(Bytes::from(chunk)).await.is_err() {
                return Ok(());
            }
        }
        if !options.follow || writer.done() {
            return Ok(());
        }
        let before = pending.len();
        let read = read_more(&mut file, &mut pending).await?;
        if read > 0 || pending.len() != before {
            continue;
        }
        // Nothing new: rotated, stopped, or just quiet.
        let now = file_identity(&path);
        if now.is_some() && now != identity {
            file = tokio::fs::File::open(&path).await?;
            identity = now;
            continue;
        }
        if !running().await {
            // One last read: lines written just before the container exited.
            if read_more(&mut file, &mut pending).await? == 0 {
                if !pending.is_empty() {
                    pending.push(b'\n');
                    continue;
                }
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            () = out.closed() => return Ok(()),
        }
    }
}

async fn read_more(file: &mut tokio::fs::File, into: &mut Vec<u8>) -> std::io::Result<usize> {
    let position = file.stream_position().await?;
    let read = file.read_to_end(into).await?;
    if read == 0 {
        file.seek(std::io::SeekFrom::Start(position)).await?;
    }
    Ok(read)
}

/// The file's device and inode: a rotated log is a new file under the same name.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(options: &LogOptions, file: &str) -> String {
        let mut writer = LogWriter::new(options);
        let mut out = Vec::new();
        let data = file.as_bytes();
        writer.write_all(&data[tail_offset(data, options.tail_lines)..], &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    const FILE: &str = "2026-12-05T10:00:00.000000001Z stdout F one\n\
        2026-12-05T10:00:01.5Z stderr F two\n\
        2026-12-05T10:00:02Z stdout P thr\n\
        2026-12-05T10:00:02.1Z stdout F ee\n\
        2026-12-05T10:00:03Z stdout F \n";

    #[test]
    fn lines_parse_with_partial_tags_and_empty_text() {
        let line = parse_line(b"2026-12-05T10:00:02Z stdout P thr").expect("line");
        assert_eq!(
            (line.stream, line.partial, line.content),
            (Stream::Stdout, true, &b"thr"[..])
        );
        let empty = parse_line(b"2026-12-05T10:00:03Z stderr F").expect("empty line");
        assert_eq!((empty.stream, empty.content), (Stream::Stderr, &b""[..]));
        assert!(
            parse_line(b"2026-12-05T10:00:03Z stdout F:x y").is_ok(),
            "tag with attributes"
        );
        assert_eq!(
            parse_line(b"garbage"),
            Err(ParseError::Fields("garbage".into()))
        );
        assert!(matches!(
            parse_line(b"yesterday stdout F x"),
            Err(ParseError::Time(_))
        ));
        assert!(matches!(
            parse_line(b"2026-12-05T10:00:03Z stdin F x"),
            Err(ParseError::Stream(_))
        ));
        assert!(matches!(
            parse_line(b"2026-12-05T10:00:03Z stdout X x"),
            Err(ParseError::Tag(_))
        ));
    }

    #[test]
    fn partial_lines_are_joined() {
        assert_eq!(output(&LogOptions::default(), FILE), "one\ntwo\nthree\n\n");
    }

    #[test]
    fn timestamps_prefix_where_a_line_starts() {
        let options = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            output(&options, FILE),
            "2026-12-05T10:00:00.000000001Z one\n2026-12-05T10:00:01.5Z two\n\
             2026-12-05T10:00:02Z three\n2026-12-05T10:00:03Z \n"
        );
    }

    #[test]
    fn tail_counts_file_lines_from_the_end() {
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(output(&tail(0), FILE), "");
        assert_eq!(output(&tail(1), FILE), "\n");
        assert_eq!(output(&tail(4), FILE), "two\nthree\n\n");
        assert_eq!(output(&tail(100), FILE), "one\ntwo\nthree\n\n");
        // A last line without its newline yet is a line.
        assert_eq!(tail_offset(b"a\nb\nc", Some(1)), 4);
        assert_eq!(tail_offset(b"", Some(3)), 0);
    }

    #[test]
    fn since_drops_earlier_lines_inclusive_boundary() {
        let options = LogOptions {
            since: Some("2026-12-05T10:00:01.5Z".parse().expect("time")),
            ..Default::default()
        };
        assert_eq!(output(&options, FILE), "two\nthree\n\n");
    }

    #[test]
    fn limit_bytes_cuts_mid_line_and_stops() {
        let options = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(output(&options, FILE), "one\ntw");
    }

    #[test]
    fn query_follows_upstream_names_and_checks() {
        let now: Timestamp = "2026-12-05T10:00:10Z".parse().expect("now");
        let options = LogOptions::from_query(
            "follow=true&tailLines=5&timestamps=true&limitBytes=10&sinceSeconds=4&previous=false",
            now,
        )
        .expect("options");
        assert_eq!(
            options,
            LogOptions {
                follow: true,
                previous: false,
                since: Some("2026-12-05T10:00:06Z".parse().expect("time")),
                timestamps: true,
                tail_lines: Some(5),
                limit_bytes: Some(10),
            }
        );
        assert_eq!(
            LogOptions::from_query("tailLines=-1", now)
                .expect("all")
                .tail_lines,
            None
        );
        assert!(LogOptions::from_query("limitBytes=0", now).is_err());
        assert!(LogOptions::from_query("sinceSeconds=x", now).is_err());
        assert!(LogOptions::from_query("sinceTime=yesterday", now).is_err());
    }

    #[tokio::test]
    async fn follow_sends_appended_lines_until_the_container_stops() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2026-12-05T10:00:00Z stdout F first\n").expect("write");
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let options = LogOptions {
            follow: true,
            ..Default::default()
        };
        let task = tokio::spawn(stream(path.clone(), options, tx, move || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        }));
        assert_eq!(rx.recv().await.expect("first"), Bytes::from("first\n"));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        // Half a line, then the rest: sent only once whole.
        file.write_all(b"2026-12-05T10:00:01Z stdout F sec")
            .expect("append");
        file.flush().expect("flush");
        tokio::time::sleep(Duration::from_millis(250)).await;
        file.write_all(b"ond\n").expect("append");
        assert_eq!(rx.recv().await.expect("second"), Bytes::from("second\n"));
        // Rotation: a new file under the name is read from its start.
        std::fs::rename(&path, dir.path().join("0.log.1")).expect("rotate");
        std::fs::write(&path, "2026-12-05T10:00:02Z stderr F third\n").expect("new file");
        assert_eq!(rx.recv().await.expect("third"), Bytes::from("third\n"));
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("ends once the container stopped")
            .expect("task")
            .expect("stream");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_client_that_leaves_ends_the_follow() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, "").expect("write");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let options = LogOptions {
            follow: true,
            ..Default::default()
        };
        let task = tokio::spawn(stream(path, options, tx, || async { true }));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("ends when the receiver is gone")
            .expect("task")
            .expect("stream");
    }
}
