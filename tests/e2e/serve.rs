//! `omk serve`: the live page, its token and CSRF checks, the `/events`
//! feed, and a person answering an ask from headless Chromium.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Omk, shown};

/// A running `omk serve`, stopped when dropped.
struct Serving {
    child: std::process::Child,
    url: String,
    addr: String,
    token: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(omk: &Omk) -> Serving {
    let mut child = omk.spawn(&["serve", "--json"], &[]);
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url =
        serde_json::from_str::<Value>(&first).unwrap_or_else(|e| panic!("{e}: {first:?}"))["url"]
            .as_str()
            .unwrap()
            .to_owned();
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, query) = rest.split_once("/?token=").unwrap();
    Serving {
        child,
        addr: addr.to_owned(),
        token: query.to_owned(),
        url,
    }
}

/// One HTTP/1.1 request to `addr`: the status and the whole answer.
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(s: &Serving, path: &str, extra: &str) -> (u16, String) {
    http(
        &s.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
            s.addr
        ),
    )
}

fn post(s: &Serving, form: &str, extra: &str) -> (u16, String) {
    http(
        &s.addr,
        &format!(
            "POST /approve HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra}\r\n{form}",
            s.addr,
            form.len()
        ),
    )
}

#[test]
fn the_page_needs_its_token_its_host_and_a_csrf_token_on_every_write() {
    let omk = Omk::new();
    crate::approvals::asking_project(&omk, "");
    // A guarded session's ask waits on the page.
    let push = "git push origin main";
    let asked = omk.run_stdin(
        &["hook", "codex"],
        &crate::approvals::bash_event(&omk, "c-1", push),
    );
    asked.code(2);
    let s = serve(&omk);
    assert_eq!(get(&s, "/", "").0, 403, "no token");
    assert_eq!(get(&s, "/?token=0123", "").0, 403, "a wrong token");
    let (code, answer) = get(&s, &format!("/?token={}", s.token), "");
    assert_eq!(code, 303, "{answer}");
    assert!(
        answer.contains(&format!(
            "omk_token={}; Path=/; HttpOnly; SameSite=Strict",
            s.token
        )),
        "{answer}"
    );
    let cookie = format!("Cookie: omk_token={}\r\n", s.token);
    let (code, page) = get(&s, "/", &cookie);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("codex session") && page.contains("Waiting for a person (1)"),
        "{page}"
    );
    assert!(page.contains(push), "{page}");
    // Another site's page that rebinds its name to 127.0.0.1 is refused.
    let rebound = http(
        &s.addr,
        &format!("GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n{cookie}\r\n"),
    );
    assert_eq!(rebound.0, 403);
    let field = |name: &str| {
        page.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_owned()
    };
    let (csrf, id, goal) = (field("csrf"), field("id"), field("goal"));
    let form =
        |csrf: &str| format!("csrf={csrf}&id={id}&goal={goal}&answer=approve&note=from+the+page");
    assert_eq!(post(&s, &form("00"), &cookie).0, 403, "a wrong CSRF token");
    assert_eq!(post(&s, &form(&csrf), "").0, 403, "no cookie");
    let elsewhere = format!("{cookie}Origin: http://evil.example\r\n");
    assert_eq!(
        post(&s, &form(&csrf), &elsewhere).0,
        403,
        "a form of another site"
    );
    let same_site = format!("{cookie}Origin: http://{}\r\n", s.addr);
    let (code, answer) = post(&s, &form(&csrf), &same_site);
    assert_eq!(code, 303, "{answer}");
    let answered = omk
        .events(&goal)
        .into_iter()
        .find(|e| e["kind"] == "approval_answered")
        .expect("the page's answer is in the log");
    assert_eq!(answered["payload"]["note"], "from the page");
    omk.run_stdin(
        &["hook", "codex"],
        &crate::approvals::bash_event(&omk, "c-1", push),
    )
    .code(0);
    // The feed: every event of the log, from the first.
    let mut feed = TcpStream::connect(&s.addr).unwrap();
    feed.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        feed,
        "GET /events?from=1 HTTP/1.1\r\nHost: {}\r\n{cookie}\r\n",
        s.addr
    )
    .unwrap();
    let mut seen = String::new();
    let until = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !seen.contains("goal_created") && Instant::now() < until {
        let n = feed.read(&mut buf).unwrap_or(0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    let data = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("an event");
    let item: Value = serde_json::from_str(data).unwrap();
    assert_eq!(item["event"]["kind"], "goal_created", "{item}");
}

#[test]
fn a_person_approves_from_the_page_in_headless_chromium_and_the_task_finishes() {
    let Some(browser) = crate::proof::chromium() else {
        crate::support::skip("no chromium here (`apt-get install chromium`)");
        return;
    };
    let (Some(node), Some(puppeteer)) = (
        crate::support::clients::installed("node22"),
        crate::support::clients::installed("puppeteer"),
    ) else {
        return;
    };
    let omk = Omk::new();
    let remote = crate::approvals::asking_project(&omk, "timeout = 180");
    let push = "git push origin HEAD:refs/heads/from-the-page";
    let s = serve(&omk);
    let run = crate::approvals::start(
        &omk,
        serde_json::json!([
            {"write": "notes/a.md", "content": "a\n"},
            {"run": push},
            {"sleep_ms": 500},
            {"write": "notes/b.md", "content": "b\n"}
        ]),
    );
    let shot = omk.root().join("serve.png");
    let out = std::process::Command::new(node)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/serve_browser.mjs"
        ))
        .arg(&puppeteer)
        .arg(browser)
        .arg(&s.url)
        .arg("push the work")
        .arg(&shot)
        .arg(omk.root().join("chromium-profile"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["listed"], true, "{seen}");
    assert!(
        !seen["address"].as_str().unwrap().contains("token"),
        "the token leaves the address bar: {seen}"
    );
    let pending = seen["pending"].as_str().unwrap();
    assert!(
        pending.contains(push) && pending.contains("command.ask"),
        "{pending}"
    );
    assert!(
        seen["svgWhenReady"].as_u64() > seen["svgWhileWaiting"].as_u64(),
        "the picture grew as the run went on: {seen}"
    );
    assert_eq!(seen["approvalsLeft"], 0);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
    if let Some(dir) = std::env::var_os("OMK_FIGURES_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("serve.png"), &png).unwrap();
    }
    let done = run.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", shown(&done));
    assert!(crate::approvals::pushed(&remote).contains("from-the-page"));
    let goal = omk.latest_goal();
    let answered = omk
        .events(&goal)
        .into_iter()
        .find(|e| e["kind"] == "approval_answered")
        .expect("the answer is in the log");
    assert_eq!(answered["payload"]["approved"], true);
    assert_eq!(answered["payload"]["note"], "looked fine");
}
