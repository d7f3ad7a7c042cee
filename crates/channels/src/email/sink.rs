//! A small SMTP server on a loopback port, for tests and benchmarks: enough ESMTP for lettre and
//! postfix's `smtp-source` (EHLO with PIPELINING, 8BITMIME and SMTPUTF8; optional AUTH PLAIN;
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), no TLS. It can keep every message or
//! only count them (memory stays flat over a long benchmark), and it can be told to fail:
//! 451 after DATA, 550 for given recipients, or a connection dropped in the middle of DATA.
//!
//! Replies are flushed only when no pipelined command is waiting, so a pipelining client gets
//! them in one write.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest command line read; longer ones end the connection.
const MAX_COMMAND: u64 = 4096;
/// Largest message accepted (`552` beyond).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What the sink does with the next transactions. Change it while running with
/// [`SmtpSink::set_behaviour`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Transactions answered `451` after their DATA, counted down over all connections.
    pub fail_transactions: u32,
    /// Recipients refused with `550` at RCPT (compared ignoring case).
    pub reject_recipients: Vec<String>,
    /// DATA transfers in which the sink closes the connection after the first line of the
    /// message, counted down over all connections.
    pub drop_during_data: u32,
    /// Count messages and bytes but keep nothing: for benchmarks.
    pub count_only: bool,
    /// When set, AUTH PLAIN is offered and required before MAIL.
    pub credentials: Option<(String, String)>,
}

impl Behaviour {
    /// Accepts everything and keeps every message.
    pub fn accept() -> Self {
        Self::default()
    }

    /// Accepts everything and keeps only counts.
    pub fn count_only() -> Self {
        Self { count_only: true, ..Self::default() }
    }

    pub fn fail_next(mut self, transactions: u32) -> Self {
        self.fail_transactions = transactions;
        self
    }

    pub fn reject(mut self, recipient: impl Into<String>) -> Self {
        self.reject_recipients.push(recipient.into());
        self
    }

    pub fn drop_mid_data(mut self, transfers: u32) -> Self {
        self.drop_during_data = transfers;
        self
    }

    pub fn require_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The envelope sender, without angle brackets.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message after dot-unstuffing, CRLF line ends, without the closing `.` line.
    pub data: Vec<u8>,
}

/// A running sink; stops (with all its connections) when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    behaviour: Mutex<Behaviour>,
    messages: Mutex<Vec<ReceivedMessage>>,
    accepted: AtomicU64,
    bytes: AtomicU64,
    connections: AtomicU64,
}

impl State {
    fn behaviour(&self) -> std::sync::MutexGuard<'_, Behaviour> {
        self.behaviour.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SmtpSink {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start(behaviour: Behaviour) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State { behaviour: Mutex::new(behaviour), ..State::default() });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Self { addr, state, task })
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP (the sink offers no STARTTLS).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The messages accepted so far (none in count-only mode).
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.state.messages.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Messages accepted (answered 250 after DATA).
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// Bytes of accepted messages, after dot-unstuffing.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour() = behaviour;
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Owned here so that aborting this task closes every connection.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: give the open sessions time to end.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        state.connections.fetch_add(1, Ordering::Relaxed);
        connections.spawn(serve(stream, Arc::clone(&state)));
    }
}

/// One SMTP session. I/O errors end it; the client sees a closed connection.
async fn serve(stream: TcpStream, state: Arc<State>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(8 * 1024, writer);
    writer.write_all(b"220 rapport-sink ESMTP\r\n").await?;
    writer.flush().await?;

    let mut line = Vec::with_capacity(256);
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut authenticated = false;
    loop {
        line.clear();
        if (&mut reader).take(MAX_COMMAND).read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            writer.write_all(b"500 5.5.2 Line too long\r\n").await?;
            writer.flush().await?;
            return Ok(());
        }
        let command = trim_line_end(&line);
        let verb = command.get(..4).unwrap_or(command).to_ascii_uppercase();
        let reply: &[u8] = match &verb[..] {
            b"EHLO" => {
                let auth = state.behaviour().credentials.is_some();
                writer.write_all(b"250-rapport-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n").await?;
                if auth {
                    writer.write_all(b"250-AUTH PLAIN\r\n").await?;
                }
                mail_from = None;
                rcpt_to.clear();
                b"250 SMTPUTF8\r\n"
            }
            b"HELO" => {
                mail_from = None;
                rcpt_to.clear();
                b"250 rapport-sink\r\n"
            }
            b"AUTH" => {
                if authenticate(command, &state) {
                    authenticated = true;
                    b"235 2.7.0 Authentication successful\r\n"
                } else {
                    b"535 5.7.8 Authentication credentials invalid\r\n"
                }
            }
            b"MAIL" => match path_argument(command, b"MAIL FROM:") {
                _ if mail_from.is_some() => b"503 5.5.1 Nested MAIL command\r\n",
                _ if !authenticated && state.behaviour().credentials.is_some() => b"530 5.7.0 Authentication required\r\n",
                Some(from) => {
                    mail_from = Some(from);
                    b"250 2.1.0 Ok\r\n"
                }
                None => b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
            },
            b"RCPT" => match path_argument(command, b"RCPT TO:") {
                _ if mail_from.is_none() => b"503 5.5.1 Need MAIL before RCPT\r\n",
                Some(to) if state.behaviour().reject_recipients.iter().any(|r| r.eq_ignore_ascii_case(&to)) => {
                    b"550 5.1.1 Recipient address rejected: User unknown\r\n"
                }
                Some(to) => {
                    rcpt_to.push(to);
                    b"250 2.1.5 Ok\r\n"
                }
                None => b"501 5.5.4 Syntax: RCPT TO:<address>\r\n",
            },
            b"DATA" if mail_from.is_none() || rcpt_to.is_empty() => b"503 5.5.1 Need RCPT before DATA\r\n",
            b"DATA" => {
                let from = mail_from.take().unwrap_or_default();
                let to = std::mem::take(&mut rcpt_to);
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                writer.flush().await?;
                let (drop_now, keep) = {
                    let mut behaviour = state.behaviour();
                    let drop_now = behaviour.drop_during_data > 0;
                    behaviour.drop_during_data = behaviour.drop_during_data.saturating_sub(1);
                    (drop_now, !behaviour.count_only)
                };
                if drop_now {
                    line.clear();
                    reader.read_until(b'\n', &mut line).await?;
                    return Ok(());
                }
                let Some((data, size)) = read_data(&mut reader, keep).await? else {
                    writer.write_all(b"552 5.3.4 Message too big\r\n").await?;
                    writer.flush().await?;
                    return Ok(());
                };
                let fail = {
                    let mut behaviour = state.behaviour();
                    let fail = behaviour.fail_transactions > 0;
                    behaviour.fail_transactions = behaviour.fail_transactions.saturating_sub(1);
                    fail
                };
                if fail {
                    b"451 4.3.0 Temporary failure, try again later\r\n"
                } else {
                    state.accepted.fetch_add(1, Ordering::Relaxed);
                    state.bytes.fetch_add(size as u64, Ordering::Relaxed);
                    if keep {
                        let message = ReceivedMessage { mail_from: from, rcpt_to: to, data };
                        state.messages.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(message);
                    }
                    b"250 2.0.0 Ok: queued\r\n"
                }
            }
            b"RSET" => {
                mail_from = None;
                rcpt_to.clear();
                b"250 2.0.0 Ok\r\n"
            }
            b"NOOP" => b"250 2.0.0 Ok\r\n",
            b"VRFY" => b"252 2.0.0 Cannot VRFY user\r\n",
            b"QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                writer.flush().await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        writer.write_all(reply).await?;
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

/// The message up to the lone `.` line, dot-unstuffed, and its size; `None` when it grows past
/// [`MAX_MESSAGE`]. Only kept when `keep` (count-only mode reuses one line buffer).
async fn read_data<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, keep: bool) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut data = Vec::new();
    let mut line = Vec::with_capacity(1024);
    let mut size = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some((data, size)));
        }
        let unstuffed = if line.first() == Some(&b'.') { &line[1..] } else { &line[..] };
        size += unstuffed.len();
        if size > MAX_MESSAGE {
            return Ok(None);
        }
        if keep {
            data.extend_from_slice(unstuffed);
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The address in `MAIL FROM:<address> PARAMS` or `RCPT TO:<address>`; `prefix` matched
/// ignoring case, a space after the colon tolerated.
fn path_argument(command: &[u8], prefix: &[u8]) -> Option<String> {
    let head = command.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = command[prefix.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b"<")?;
    let end = rest.iter().position(|&b| b == b'>')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// `AUTH PLAIN <base64 of \0user\0password>` against the configured credentials.
fn authenticate(command: &[u8], state: &State) -> bool {
    let Some((user, password)) = state.behaviour().credentials.clone() else { return false };
    let mut words = command.split(|&b| b == b' ');
    let (Some(_), Some(mechanism), Some(response)) = (words.next(), words.next(), words.next()) else { return false };
    if !mechanism.eq_ignore_ascii_case(b"PLAIN") {
        return false;
    }
    BASE64.decode(response).is_ok_and(|decoded| decoded == format!("\0{user}\0{password}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_mail_and_rcpt() {
        assert_eq!(path_argument(b"MAIL FROM:<a@example.com> BODY=8BITMIME", b"MAIL FROM:"), Some("a@example.com".into()));
        assert_eq!(path_argument(b"mail from: <>", b"MAIL FROM:"), Some(String::new()));
        assert_eq!(path_argument(b"RCPT TO:<b@example.org>", b"RCPT TO:"), Some("b@example.org".into()));
        assert_eq!(path_argument(b"RCPT TO:b@example.org", b"RCPT TO:"), None);
        assert_eq!(path_argument(b"RCPT", b"RCPT TO:"), None);
    }

    /// A raw session: pipelined commands, dot-unstuffing, RSET and the replies' order.
    #[tokio::test]
    async fn speaks_pipelined_esmtp() {
        let sink = SmtpSink::start(Behaviour::accept().reject("nobody@example.org")).await.unwrap();
        let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
        stream
            .write_all(
                b"EHLO test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n\
                  Subject: hi\r\n\r\n..leading dot\r\n.\r\n\
                  RSET\r\nNOOP\r\nQUIT\r\n",
            )
            .await
            .unwrap();
        let mut replies = String::new();
        stream.read_to_string(&mut replies).await.unwrap();
        let codes: Vec<&str> = replies.lines().map(|l| &l[..3]).collect();
        assert_eq!(codes, ["220", "250", "250", "250", "250", "250", "550", "250", "354", "250", "250", "250", "221"]);
        let messages = sink.messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].mail_from, "a@example.com");
        assert_eq!(messages[0].rcpt_to, ["b@example.org"]);
        assert_eq!(messages[0].data, b"Subject: hi\r\n\r\n.leading dot\r\n");
        assert_eq!(sink.accepted(), 1);
    }

    #[tokio::test]
    async fn count_only_keeps_no_messages() {
        let sink = SmtpSink::start(Behaviour::count_only()).await.unwrap();
        let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
        stream.write_all(b"HELO t\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nabc\r\n.\r\nQUIT\r\n").await.unwrap();
        let mut replies = String::new();
        stream.read_to_string(&mut replies).await.unwrap();
        assert!(replies.ends_with("221 2.0.0 Bye\r\n"), "{replies}");
        assert_eq!((sink.accepted(), sink.bytes(), sink.messages().len()), (1, 5, 0));
    }
}
