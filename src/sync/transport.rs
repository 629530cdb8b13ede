//! How sync talks to annal-server: a small request/response trait, so the
//! browser uses fetch, native code and tests use anything, and a shipped
//! fault-injecting transport drills failures a real network produces.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// One HTTP request to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query, e.g. `/v1/events?after=3`.
    pub path: String,
    /// The bearer token.
    pub token: Option<String>,
    /// A JSON body.
    pub body: Option<String>,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, in ms.
    pub retry_after_ms: Option<u64>,
    /// The body text.
    pub body: String,
}

/// The request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No connection, DNS, reset, CORS: the network failed.
    Network(String),
    /// No answer in time.
    Timeout,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Network(why) => write!(f, "network error: {why}"),
            TransportError::Timeout => f.write_str("the server did not answer in time"),
        }
    }
}

/// Sends requests. Not `Send`: in browsers everything runs on one thread.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Sends one request.
    async fn send(&self, request: Request) -> Result<Response, TransportError>;
}

/// A failure to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The request never reaches the server.
    Fail,
    /// The request never reaches the server, and the client gives up waiting.
    Timeout,
    /// The server answers this status, with an optional `Retry-After` (ms),
    /// without seeing the request.
    Status(u16, Option<u64>),
    /// The server receives and commits the request, but the answer is lost.
    LoseResponse,
    /// The request is delivered twice; the client sees the second answer.
    Duplicate,
    /// The request is delivered after this many ms.
    Delay(u64),
}

/// An async sleep, for [`Fault::Delay`].
pub type Sleep = Box<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A transport that injects faults into chosen requests of another one.
/// Requests are numbered from 1 in the order they are sent.
pub struct FaultyTransport<T> {
    inner: T,
    faults: RefCell<HashMap<usize, Fault>>,
    every: RefCell<Option<(Fault, usize)>>,
    sent: Cell<usize>,
    log: RefCell<Vec<(usize, Request, Option<Fault>)>>,
    sleep: Option<Sleep>,
}

impl<T> std::fmt::Debug for FaultyTransport<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyTransport")
            .field("sent", &self.sent.get())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> FaultyTransport<T> {
    /// Wraps `inner`, injecting nothing yet.
    pub fn new(inner: T) -> Self {
        FaultyTransport {
            inner,
            faults: RefCell::default(),
            every: RefCell::default(),
            sent: Cell::new(0),
            log: RefCell::default(),
            sleep: None,
        }
    }

    /// How [`Fault::Delay`] waits.
    pub fn with_sleep(mut self, sleep: Sleep) -> Self {
        self.sleep = Some(sleep);
        self
    }

    /// Injects `fault` into request number `n` (counting every request
    /// sent so far, from 1).
    pub fn fail_nth(&self, n: usize, fault: Fault) {
        self.faults.borrow_mut().insert(n, fault);
    }

    /// Injects `fault` into each of the next `count` requests.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        let start = self.sent.get() + 1;
        for n in start..start + count {
            self.fail_nth(n, fault.clone());
        }
    }

    /// Injects `fault` into every request until [`Self::heal`].
    pub fn fail_all(&self, fault: Fault) {
        *self.every.borrow_mut() = Some((fault, 0));
    }

    /// Stops [`Self::fail_all`].
    pub fn heal(&self) {
        self.every.borrow_mut().take();
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.get()
    }

    /// Every request so far with the fault it got.
    pub fn log(&self) -> Vec<(usize, Request, Option<Fault>)> {
        self.log.borrow().clone()
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let n = self.sent.get() + 1;
        self.sent.set(n);
        let fault = self
            .faults
            .borrow_mut()
            .remove(&n)
            .or_else(|| self.every.borrow().as_ref().map(|(f, _)| f.clone()));
        self.log
            .borrow_mut()
            .push((n, request.clone(), fault.clone()));
        match fault {
            None => self.inner.send(request).await,
            Some(Fault::Fail) => Err(TransportError::Network("injected failure".into())),
            Some(Fault::Timeout) => Err(TransportError::Timeout),
            Some(Fault::Status(status, retry_after_ms)) => Ok(Response {
                status,
                retry_after_ms,
                body: r#"{"code":"INJECTED","message":"injected by FaultyTransport"}"#.into(),
            }),
            Some(Fault::LoseResponse) => {
                let _ = self.inner.send(request).await;
                Err(TransportError::Network(
                    "injected: the response was lost".into(),
                ))
            }
            Some(Fault::Duplicate) => {
                let _ = self.inner.send(request.clone()).await;
                self.inner.send(request).await
            }
            Some(Fault::Delay(ms)) => {
                if let Some(sleep) = &self.sleep {
                    sleep(ms).await;
                }
                self.inner.send(request).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    /// Runs a future whose awaits are all ready at once.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// A server that counts what reaches it.
    #[derive(Default)]
    struct Counting {
        received: Cell<usize>,
    }

    impl Transport for Counting {
        async fn send(&self, _: Request) -> Result<Response, TransportError> {
            self.received.set(self.received.get() + 1);
            Ok(Response {
                status: 200,
                retry_after_ms: None,
                body: self.received.get().to_string(),
            })
        }
    }

    fn get() -> Request {
        Request {
            method: "GET",
            path: "/v1/schema".into(),
            token: None,
            body: None,
        }
    }

    #[test]
    fn every_fault_does_what_it_says() {
        let slept = Rc::new(Cell::new(0));
        let s = slept.clone();
        let t = FaultyTransport::new(Counting::default()).with_sleep(Box::new(move |ms| {
            s.set(s.get() + ms);
            Box::pin(async {})
        }));
        t.fail_nth(1, Fault::Fail);
        t.fail_nth(2, Fault::Timeout);
        t.fail_nth(3, Fault::Status(429, Some(2_000)));
        t.fail_nth(4, Fault::LoseResponse);
        t.fail_nth(5, Fault::Duplicate);
        t.fail_nth(6, Fault::Delay(250));
        assert!(matches!(
            block_on(t.send(get())),
            Err(TransportError::Network(_))
        ));
        assert_eq!(block_on(t.send(get())), Err(TransportError::Timeout));
        let r = block_on(t.send(get())).unwrap();
        assert_eq!((r.status, r.retry_after_ms), (429, Some(2_000)));
        assert_eq!(
            t.inner().received.get(),
            0,
            "none of these reached the server"
        );
        assert!(block_on(t.send(get())).is_err());
        assert_eq!(
            t.inner().received.get(),
            1,
            "a lost response was still delivered"
        );
        assert_eq!(
            block_on(t.send(get())).unwrap().body,
            "3",
            "a duplicate is delivered twice"
        );
        assert_eq!(block_on(t.send(get())).unwrap().body, "4");
        assert_eq!(slept.get(), 250);
        assert_eq!(
            block_on(t.send(get())).unwrap().body,
            "5",
            "request 7 passes"
        );
        t.fail_all(Fault::Fail);
        assert!(block_on(t.send(get())).is_err());
        assert!(block_on(t.send(get())).is_err());
        t.heal();
        assert!(block_on(t.send(get())).is_ok());
        t.fail_next(1, Fault::Timeout);
        assert!(block_on(t.send(get())).is_err());
        assert_eq!(t.sent(), 11);
        assert_eq!(t.log()[0].2, Some(Fault::Fail));
        assert_eq!(t.log()[6].2, None);
    }
}
