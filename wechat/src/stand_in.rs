//! A stand-in for WeChat's API, written from its documentation: access
//! tokens (`/cgi-bin/token`, `/cgi-bin/stable_token`), customer-service
//! messages and typing, and the custom menu, for one or several official
//! accounts (each token is an account's). It records what it was sent, per
//! reader and account, and can be told to refuse calls with a given
//! `errcode`, for every account or one.
//!
//! `doumi up` serves it so a local stack delivers late replies somewhere
//! `doumi chat` can read them (`GET /stand-in/messages`); the end-to-end
//! tests use it as WeChat's API.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{Query, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Token lifetime the stand-in announces, as WeChat does.
const EXPIRES_IN: u64 = 7200;
/// Messages kept per reader.
const KEPT_PER_READER: usize = 1000;

/// Which of the stand-in's APIs an injected failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Token,
    CustomSend,
    Typing,
    Menu,
    /// `get_api_domain_ip`: what the gateway probes its credentials with.
    DomainIp,
}

/// WeChat's API, in memory; cheap to clone.
#[derive(Clone, Default)]
pub struct StandIn {
    state: Arc<StandInState>,
}

#[derive(Default)]
struct StandInState {
    /// AppSecret by AppID, the accounts tokens are issued for; empty = any.
    credentials: HashMap<String, String>,
    tokens: Mutex<Tokens>,
    token_requests: AtomicU64,
    forced_refreshes: AtomicU64,
    send_calls: AtomicU64,
    typing_calls: AtomicU64,
    /// What was delivered, by reader: the sending account's AppID and the
    /// message.
    messages: Mutex<HashMap<String, Vec<(String, Value)>>>,
    /// The menu as last created, by AppID.
    menus: Mutex<HashMap<String, Value>>,
    /// Injected refusals: `(errcode, times)` by the API and the AppID they
    /// apply to (`None`: every account's).
    failures: Mutex<HashMap<Refused, (i64, u32)>>,
}

/// Which calls an injected refusal applies to.
type Refused = (Api, Option<String>);

#[derive(Default)]
struct Tokens {
    /// The token each account holds now, by AppID.
    current: HashMap<String, String>,
    /// Every token still good, with its account's AppID.
    valid: HashMap<String, String>,
    issued: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refused(errcode: i64, errmsg: &str) -> Json<Value> {
    Json(json!({ "errcode": errcode, "errmsg": errmsg }))
}

fn ok() -> Json<Value> {
    refused(0, "ok")
}

impl StandIn {
    /// A stand-in that issues tokens only for `app_id` and `app_secret`.
    pub fn for_account(app_id: &str, app_secret: &str) -> Self {
        Self::for_accounts(&[(app_id, app_secret)])
    }

    /// A stand-in for several accounts, each `(AppID, AppSecret)`.
    pub fn for_accounts(accounts: &[(&str, &str)]) -> Self {
        Self {
            state: Arc::new(StandInState {
                credentials: accounts
                    .iter()
                    .map(|(id, secret)| ((*id).to_owned(), (*secret).to_owned()))
                    .collect(),
                ..StandInState::default()
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/cgi-bin/message/custom/send", post(custom_send))
            .route("/cgi-bin/message/custom/typing", post(typing))
            .route("/cgi-bin/menu/create", post(menu_create))
            .route("/cgi-bin/get_current_selfmenu_info", get(menu_get))
            .route("/cgi-bin/menu/get", get(menu_get))
            .route("/cgi-bin/menu/delete", get(menu_delete))
            .route("/cgi-bin/get_api_domain_ip", get(domain_ip))
            .route("/stand-in/messages", get(messages))
            .with_state(self.clone())
    }

    /// Token requests made (forced or not).
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Token requests with `force_refresh`.
    pub fn forced_refreshes(&self) -> u64 {
        self.state.forced_refreshes.load(Ordering::SeqCst)
    }

    /// Calls to `custom/send`, refused ones included.
    pub fn send_calls(&self) -> u64 {
        self.state.send_calls.load(Ordering::SeqCst)
    }

    pub fn typing_calls(&self) -> u64 {
        self.state.typing_calls.load(Ordering::SeqCst)
    }

    /// The customer-service messages delivered to `reader`, oldest first,
    /// whichever account sent them.
    pub fn delivered_to(&self, reader: &str) -> Vec<Value> {
        self.delivered(reader, |_| true)
    }

    /// The customer-service messages the account `app_id` delivered to
    /// `reader`, oldest first.
    pub fn delivered_by(&self, app_id: &str, reader: &str) -> Vec<Value> {
        self.delivered(reader, |sender| sender == app_id)
    }

    fn delivered(&self, reader: &str, sent_by: impl Fn(&str) -> bool) -> Vec<Value> {
        lock(&self.state.messages)
            .get(reader)
            .map(|kept| {
                kept.iter()
                    .filter(|(sender, _)| sent_by(sender))
                    .map(|(_, message)| message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The menu as last created by any account.
    pub fn menu(&self) -> Option<Value> {
        lock(&self.state.menus).values().next().cloned()
    }

    /// The menu the account `app_id` last created.
    pub fn menu_of(&self, app_id: &str) -> Option<Value> {
        lock(&self.state.menus).get(app_id).cloned()
    }

    /// The next `times` calls to `api` are refused with `errcode`, whichever
    /// account makes them.
    pub fn refuse_next(&self, api: Api, errcode: i64, times: u32) {
        lock(&self.state.failures).insert((api, None), (errcode, times));
    }

    /// The next `times` calls to `api` by the account `app_id` are refused
    /// with `errcode`.
    pub fn refuse_next_for(&self, app_id: &str, api: Api, errcode: i64, times: u32) {
        lock(&self.state.failures).insert((api, Some(app_id.to_owned())), (errcode, times));
    }

    /// Every token issued so far stops working (as after a refresh elsewhere).
    pub fn invalidate_tokens(&self) {
        let mut tokens = lock(&self.state.tokens);
        tokens.valid.clear();
        tokens.current.clear();
    }

    /// An injected refusal of a call to `api` by `app_id`, if one is due.
    fn injected(&self, api: Api, app_id: &str) -> Option<Json<Value>> {
        let mut failures = lock(&self.state.failures);
        let key = [(api, Some(app_id.to_owned())), (api, None)]
            .into_iter()
            .find(|key| failures.contains_key(key))?;
        let (errcode, times) = failures.get_mut(&key)?;
        let errcode = *errcode;
        *times -= 1;
        if *times == 0 {
            failures.remove(&key);
        }
        Some(refused(errcode, "injected by the stand-in"))
    }

    fn issue(&self, app_id: &str, secret: &str, force: bool) -> Json<Value> {
        self.state.token_requests.fetch_add(1, Ordering::SeqCst);
        if force {
            self.state.forced_refreshes.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(failure) = self.injected(Api::Token, app_id) {
            return failure;
        }
        if !self.state.credentials.is_empty() {
            match self.state.credentials.get(app_id) {
                None => return refused(40013, "invalid appid"),
                Some(expected) if expected != secret => {
                    return refused(40125, "invalid appsecret");
                }
                Some(_) => {}
            }
        }
        let mut tokens = lock(&self.state.tokens);
        let token = match (tokens.current.get(app_id), force) {
            (Some(current), false) => current.clone(),
            _ => {
                tokens.issued += 1;
                let token = format!(
                    "stand-in-token-{}-{:016x}",
                    tokens.issued,
                    rand::random::<u64>()
                );
                tokens.valid.insert(token.clone(), app_id.to_owned());
                tokens.current.insert(app_id.to_owned(), token.clone());
                token
            }
        };
        Json(json!({ "access_token": token, "expires_in": EXPIRES_IN }))
    }

    /// The AppID whose token this is; WeChat's refusal when it is not good.
    fn authorise(&self, token: Option<&str>) -> Result<String, Json<Value>> {
        let Some(token) = token else {
            return Err(refused(41001, "access_token missing"));
        };
        lock(&self.state.tokens)
            .valid
            .get(token)
            .cloned()
            .ok_or_else(|| {
                refused(
                    40001,
                    "invalid credential, access_token is invalid or not latest",
                )
            })
    }

    /// The caller's AppID, once its token is good and no refusal of `api`
    /// is injected for it.
    fn admit(&self, token: Option<&str>, api: Api) -> Result<String, Json<Value>> {
        let app_id = self.authorise(token)?;
        match self.injected(api, &app_id) {
            Some(failure) => Err(failure),
            None => Ok(app_id),
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    appid: Option<String>,
    secret: Option<String>,
}

async fn token(State(wechat): State<StandIn>, Query(query): Query<TokenQuery>) -> Json<Value> {
    wechat.issue(
        query.appid.as_deref().unwrap_or_default(),
        query.secret.as_deref().unwrap_or_default(),
        false,
    )
}

#[derive(Deserialize)]
struct StableTokenBody {
    grant_type: String,
    appid: String,
    secret: String,
    #[serde(default)]
    force_refresh: bool,
}

async fn stable_token(
    State(wechat): State<StandIn>,
    body: Option<Json<StableTokenBody>>,
) -> Json<Value> {
    match body {
        Some(Json(body)) if body.grant_type == "client_credential" => {
            wechat.issue(&body.appid, &body.secret, body.force_refresh)
        }
        _ => refused(40002, "invalid grant_type"),
    }
}

#[derive(Deserialize)]
struct Authorised {
    access_token: Option<String>,
}

async fn custom_send(
    State(wechat): State<StandIn>,
    Query(query): Query<Authorised>,
    body: Option<Json<Value>>,
) -> Json<Value> {
    wechat.state.send_calls.fetch_add(1, Ordering::SeqCst);
    let app_id = match wechat.admit(query.access_token.as_deref(), Api::CustomSend) {
        Ok(app_id) => app_id,
        Err(refusal) => return refusal,
    };
    let Some(Json(message)) = body else {
        return refused(47001, "data format error");
    };
    let Some(reader) = message
        .get("touser")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return refused(40003, "invalid openid");
    };
    let mut messages = lock(&wechat.state.messages);
    let kept = messages.entry(reader).or_default();
    if kept.len() == KEPT_PER_READER {
        kept.remove(0);
    }
    kept.push((app_id, message));
    ok()
}

async fn typing(
    State(wechat): State<StandIn>,
    Query(query): Query<Authorised>,
    Json(_): Json<Value>,
) -> Json<Value> {
    wechat.state.typing_calls.fetch_add(1, Ordering::SeqCst);
    match wechat.admit(query.access_token.as_deref(), Api::Typing) {
        Ok(_) => ok(),
        Err(refusal) => refusal,
    }
}

async fn menu_create(
    State(wechat): State<StandIn>,
    Query(query): Query<Authorised>,
    body: Option<Json<Value>>,
) -> Json<Value> {
    let app_id = match wechat.admit(query.access_token.as_deref(), Api::Menu) {
        Ok(app_id) => app_id,
        Err(refusal) => return refusal,
    };
    match body {
        Some(Json(menu)) if menu.get("button").is_some_and(Value::is_array) => {
            lock(&wechat.state.menus).insert(app_id, menu);
            ok()
        }
        _ => refused(40016, "invalid button size"),
    }
}

async fn domain_ip(State(wechat): State<StandIn>, Query(query): Query<Authorised>) -> Json<Value> {
    if let Err(refusal) = wechat.admit(query.access_token.as_deref(), Api::DomainIp) {
        return refusal;
    }
    Json(json!({ "ip_list": ["127.0.0.1"] }))
}

async fn menu_get(State(wechat): State<StandIn>, Query(query): Query<Authorised>) -> Json<Value> {
    let app_id = match wechat.authorise(query.access_token.as_deref()) {
        Ok(app_id) => app_id,
        Err(refusal) => return refusal,
    };
    match wechat.menu_of(&app_id) {
        Some(menu) => Json(json!({ "is_menu_open": 1, "selfmenu_info": menu })),
        None => Json(json!({ "is_menu_open": 0 })),
    }
}

async fn menu_delete(
    State(wechat): State<StandIn>,
    Query(query): Query<Authorised>,
) -> Json<Value> {
    match wechat.authorise(query.access_token.as_deref()) {
        Ok(app_id) => {
            lock(&wechat.state.menus).remove(&app_id);
            ok()
        }
        Err(refusal) => refusal,
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    touser: String,
    #[serde(default)]
    after: usize,
}

/// The stand-in's own read side: what was delivered to `touser`, from the
/// `after`-th message on, and the count to ask `after` next time.
async fn messages(
    State(wechat): State<StandIn>,
    Query(query): Query<MessagesQuery>,
) -> Json<Value> {
    let delivered = wechat.delivered_to(&query.touser);
    let next = delivered.len();
    let new: Vec<Value> = delivered.into_iter().skip(query.after).collect();
    Json(json!({ "messages": new, "next": next }))
}
