# shellcheck shell=bash disable=SC2154,SC2034 # the wechat_* variables: set and read by the caller
# WeChat's side of the conversation, with curl and sha1sum: signed URL verification and signed
# plaintext text messages, as WeChat's servers send them. Sourced by tests/kind/run.sh and
# scripts/container-test.
#
# The caller sets, before calling anything:
#   wechat_url    the gateway's endpoint, e.g. http://127.0.0.1:18080/wechat
#   wechat_token  the Token the gateway was given (DOUMI_WECHAT_TOKEN)
#   wechat_reply  a file that receives each reply body

# signature = hex(sha1(the token, timestamp and nonce sorted bytewise and joined)).
wechat_sign() {
  printf '%s\n' "$wechat_token" "$1" "$2" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -d' ' -f1
}

# A fresh signed query string (signature, timestamp, nonce).
wechat_query() {
  local ts nonce
  ts=$(date +%s)
  nonce=$RANDOM$RANDOM
  printf 'signature=%s&timestamp=%s&nonce=%s' "$(wechat_sign "$ts" "$nonce")" "$ts" "$nonce"
}

# MsgIds must differ per message: the gateway de-duplicates WeChat's retries by MsgId.
wechat_msg_id=$(($(date +%s) * 1000))

# wechat_verify ECHOSTR [CURL_MAX_TIME]: the URL verification GET; prints the body.
wechat_verify() {
  curl -sS --max-time "${2:-5}" "$wechat_url?$(wechat_query)&echostr=$1"
}

# wechat_send TEXT [CURL_MAX_TIME]: POSTs a signed text message to gh_test from a reader of its
# own (reader-<MsgId>, in $wechat_reader: each check is a different reader, so the bot's
# per-reader pace never answers a check with "too fast"). The reply body goes to $wechat_reply,
# the HTTP status to $wechat_status (000: no answer) and the seconds it took to $wechat_secs.
# Call it directly, never in $(...): the MsgId counter must advance.
wechat_send() {
  wechat_msg_id=$((wechat_msg_id + 1))
  wechat_reader=reader-$wechat_msg_id
  local body out
  body=$(printf '<xml><ToUserName><![CDATA[gh_test]]></ToUserName>%s%s%s%s%s</xml>' \
    "<FromUserName><![CDATA[$wechat_reader]]></FromUserName>" "<CreateTime>$(date +%s)</CreateTime>" \
    '<MsgType><![CDATA[text]]></MsgType>' "<Content><![CDATA[$1]]></Content>" "<MsgId>$wechat_msg_id</MsgId>")
  : >"$wechat_reply"
  if out=$(curl -sS --max-time "${2:-10}" -o "$wechat_reply" -w '%{http_code} %{time_total}' \
    -H 'Content-Type: text/xml' --data-binary "$body" "$wechat_url?$(wechat_query)"); then
    read -r wechat_status wechat_secs <<<"$out"
  else
    wechat_status=000
    wechat_secs=${2:-10}
  fi
}

# wechat_reply_is_addressed: the last reply goes back to its reader, from gh_test.
wechat_reply_is_addressed() {
  grep -qF -- '<FromUserName><![CDATA[gh_test]]></FromUserName>' "$wechat_reply" &&
    grep -qF -- "<ToUserName><![CDATA[$wechat_reader]]></ToUserName>" "$wechat_reply"
}
