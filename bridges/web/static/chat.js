// TechAssist web chat: protocol v2 over /ws (docs/protocol.md). No build step.
//
// - One reply frame per turn; its "ack" names the message it answers.
// - Messages wait in an outbox (kept in localStorage) until acknowledged; on each
//   reconnect every one still waiting is sent once more with the same id, and the
//   server answers a repeated id from its stored replies, never running it twice.
// - The resume position is the last notice id seen (kept per technician in
//   localStorage, so it outlives a reload), else the last reply id: the server sends
//   again the notices pushed after it, which a dropped connection may have lost. Each
//   message is shown once, by its data-id. The credential is the HttpOnly cookie.

const SEEN = "techassist.seen"; // {cuid: the last notice id this browser showed them}
const WHO = "techassist.cuid"; // the technician this browser last signed in as
const OUTBOX = "techassist.outbox";
const MASK = "••••••";
const NOTICE_LABELS = {
  answer: "From dispatch",
  reminder: "Reminder",
  handback: "Order handed back",
  cancelled: "Order cancelled",
  info: "Notice",
};

const body = document.body;
const transcript = document.getElementById("transcript");
const choices = document.getElementById("choices");
const composer = document.getElementById("composer");
const input = composer.querySelector("input[name=text]");
const offline = document.getElementById("offline");
const typing = document.getElementById("typing");
const where = document.getElementById("where");
const order = document.getElementById("order");
const statusButton = document.getElementById("status-btn");

let socket = null;
let ready = false; // this connection has been welcomed: messages may go out
let greeted = false; // this page shows a reply: later connections resume quietly
let lastReply = null; // the last reply id this page showed
let attempts = 0;
let stopped = false; // signed out: no more reconnecting
let sensitive = false; // the question on screen asks for a secret
let secretNames = []; // the plan's sensitive parameters: masked wherever they are typed
const answered = new Set(); // acks already shown
const shown = new Set(); // server ids already shown

function load(name, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(name));
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function save(name, value) {
  try {
    localStorage.setItem(name, JSON.stringify(value));
  } catch {
    // private mode or full: the page still works, without surviving a reload
  }
}

let outbox = load(OUTBOX, []);
let cuid = load(WHO, null);
let lastNotice = seenBy(cuid);

function seenBy(who) {
  const seen = load(SEEN, {});
  return who && typeof seen === "object" && typeof seen[who] === "string" ? seen[who] : null;
}

function onScreen(id) {
  return shown.has(id) || transcript.querySelector(`.msg[data-id="${CSS.escape(id)}"]`) !== null;
}

function newId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function scrollDown() {
  transcript.scrollTop = transcript.scrollHeight;
}

function addMessage(kind, text, id, label) {
  const div = document.createElement("div");
  div.className = "msg " + kind;
  if (id) div.dataset.id = id;
  if (label) {
    const strong = document.createElement("strong");
    strong.textContent = label;
    div.append(strong);
  }
  div.append(document.createTextNode(text));
  transcript.append(div);
  scrollDown();
  return div;
}

function setState(state) {
  body.dataset.state = state;
  offline.hidden = state !== "offline";
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function masked(text) {
  // name=value, name: value, "name": "value" or 'name': 'value' of a sensitive parameter.
  for (const name of secretNames) {
    const key = escapeRegExp(name);
    const pattern = new RegExp(
      `(?<![\\w])((["']?)${key}\\2\\s*[=:]\\s*)("[^"]*"|'[^']*'|[^\\s,}]+)`,
      "g",
    );
    text = text.replace(pattern, `$1${MASK}`);
  }
  return text;
}

function setWhere(info) {
  if (!info) return;
  secretNames = Array.isArray(info.sensitive) ? info.sensitive : [];
  if (info.order_id) {
    order.textContent = `Order ${info.order_id}` + (info.order_type ? ` · ${info.order_type}` : "");
  } else {
    order.textContent = "No order in progress";
  }
  where.textContent = info.step && info.of ? `Step ${info.step} of ${info.of}` : "";
  where.title = info.task || "";
}

function setChoices(list) {
  choices.replaceChildren();
  for (const choice of list || []) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = choice;
    button.addEventListener("click", () => send("action", choice));
    choices.append(button);
  }
}

function setPrompt(reply) {
  sensitive = Boolean(reply && reply.sensitive);
  input.type = sensitive ? "password" : "text";
  input.placeholder = sensitive ? "Type the value (hidden)" : "Type your answer";
  input.setAttribute("aria-label", reply && reply.kind === "prompt" ? reply.text.split("\n").pop() : "Your answer");
  setChoices(reply ? reply.choices : []);
}

function rememberNotice(id) {
  lastNotice = id;
  if (!cuid) return;
  const seen = load(SEEN, {});
  save(SEEN, { ...(typeof seen === "object" ? seen : {}), [cuid]: id });
}

function welcomed(frame) {
  if (frame.cuid && frame.cuid !== cuid) {
    // Another technician on this browser: their own position from now on.
    cuid = frame.cuid;
    save(WHO, cuid);
    lastNotice = seenBy(cuid);
  }
}

function showTyping(text) {
  typing.textContent = text || "TechAssist is working…";
  typing.hidden = false;
}

function hideTyping() {
  typing.hidden = true;
  typing.textContent = "";
}

function onReply(frame) {
  hideTyping();
  if (frame.ack) {
    outbox = outbox.filter((m) => m.id !== frame.ack);
    save(OUTBOX, outbox);
    const mine = transcript.querySelector(`.msg.me[data-id="${CSS.escape(frame.ack)}"]`);
    if (mine) mine.classList.remove("pending");
    if (answered.has(frame.ack)) return; // the same answer again, after a resend
    answered.add(frame.ack);
  }
  if (shown.has(frame.id)) return;
  shown.add(frame.id);
  frame.replies.forEach((reply, i) => {
    const notice = reply.data && reply.data.notice;
    if (notice) {
      // A notice drained into this turn (it could not be pushed before).
      const id = reply.data.notice_id;
      if (onScreen(id)) return;
      shown.add(id);
      addMessage("notice", reply.text, id, NOTICE_LABELS[notice] || "Notice");
    } else {
      addMessage("bot", reply.text, `${frame.id}.${i}`);
    }
  });
  setWhere(frame.where);
  const last = frame.replies[frame.replies.length - 1];
  setPrompt(last && last.kind === "prompt" ? last : null);
  lastReply = frame.id;
  greeted = true; // a greeting lost with the connection is asked for again
}

function onNotice(frame) {
  // Sent again after a reconnect (the connection may have lost it): shown once.
  if (onScreen(frame.id)) return;
  shown.add(frame.id);
  addMessage("notice", frame.text, frame.id, NOTICE_LABELS[frame.kind] || "Notice");
  rememberNotice(frame.id);
}

function onFrame(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  switch (frame.type) {
    case "welcome":
      welcomed(frame);
      ready = true;
      flush();
      break;
    case "reply":
      onReply(frame);
      break;
    case "notice":
      onNotice(frame);
      break;
    case "typing":
      showTyping();
      break;
    case "progress":
      showTyping(frame.text);
      break;
    case "error":
      hideTyping();
      addMessage("error", frame.message);
      break;
  }
}

function transmit(message) {
  if (!ready || !socket || socket.readyState !== WebSocket.OPEN) return false;
  const frame = message.type === "action"
    ? { type: "action", id: message.id, value: message.text }
    : { type: "message", id: message.id, text: message.text };
  socket.send(JSON.stringify(frame));
  return true;
}

function flush() {
  // Every message still waiting is sent once on this connection, with its own id.
  for (const message of outbox) transmit(message);
}

function send(type, text) {
  text = text.trim();
  if (!text) return;
  const message = { id: newId(), type, text };
  outbox.push(message);
  save(OUTBOX, outbox);
  const div = addMessage("me", sensitive && type === "message" ? MASK : masked(text), message.id);
  if (!transmit(message)) div.classList.add("pending"); // sent after the next welcome
  setChoices([]);
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  input.value = "";
  send("message", text);
  input.focus();
});

statusButton.addEventListener("click", () => send("action", "status"));

function connect() {
  if (socket || stopped) return;
  setState(body.dataset.state === "offline" ? "offline" : "connecting");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  socket = ws;
  let opened = false;
  ws.addEventListener("open", () => {
    opened = true;
    attempts = 0;
    setState("online");
    // A fresh page (nothing on screen yet) is told where things stand.
    const resume = lastNotice ?? lastReply;
    ws.send(JSON.stringify({ type: "hello", v: 2, resume, fresh: !greeted }));
  });
  ws.addEventListener("message", onFrame);
  ws.addEventListener("close", () => {
    if (socket !== ws) return;
    socket = null;
    ready = false;
    hideTyping();
    setState("offline");
    for (const div of transcript.querySelectorAll(".msg.me")) {
      if (outbox.some((m) => m.id === div.dataset.id)) div.classList.add("pending");
    }
    attempts += 1;
    const delay = Math.min(15000, 500 * 2 ** Math.min(attempts - 1, 5));
    const retry = () => setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
    if (opened || attempts % 3 !== 2) {
      retry();
      return;
    }
    // Refused more than once: is it the network, or is the sign-in gone (revoked, expired)?
    fetch("/", { credentials: "same-origin", cache: "no-store" })
      .then((response) => {
        if (response.status === 401) {
          signedOut();
        } else {
          retry();
        }
      })
      .catch(retry);
  });
}

function signedOut() {
  offline.textContent = "You are signed out. Open a new sign-in link from your dispatcher.";
  offline.hidden = false;
  composer.querySelector("button[type=submit]").disabled = true;
  input.disabled = true;
  statusButton.disabled = true;
  setChoices([]);
  stopped = true;
}

window.addEventListener("online", () => {
  if (!socket) connect();
});

connect();
