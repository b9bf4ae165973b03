// The invitation page (/invite/<token>): what the link invites to; signed out, a way to sign
// in that comes back here; signed in with the invited address, Accept, which adds the grant,
// switches the session to it (/auth/act) and opens the console where it is used.

import { api, pageSession, problemText } from "./api.js";

const $ = (id) => document.getElementById(id);
const token = location.pathname.slice("/invite/".length);
let invitation = null;
let session = null;

function say(kind, text) {
  const box = $("message");
  box.dataset.kind = kind;
  box.textContent = text;
}

function step(id) {
  for (const name of ["step-signin", "step-other", "step-accept"]) $(name).hidden = name !== id;
}

const GONE = {
  "invitation-used": "This invitation has been accepted already.",
  "invitation-revoked": "This invitation was withdrawn by whoever sent it.",
  "invitation-expired": "This invitation has expired. Ask whoever sent it for a new one.",
  "not-found": "This invitation link is broken or unknown. Check that you opened the whole link.",
};

function refusal(r) {
  if (r.kind === "invitation-not-yours") {
    return "This invitation was sent to another address: sign in with that one to accept it.";
  }
  return GONE[r.kind] || problemText(r);
}

function fromWhom(invitedBy) {
  const [role, subject] = invitedBy.split(/:(.*)/s);
  if (role === "operator") return "the operators of this livecart";
  return `${role} ${subject}`;
}

function showInvitation() {
  $("invite-what").textContent = `You're invited as ${invitation.what}.`;
  $("invite-email").textContent = invitation.email;
  $("invite-from").textContent = fromWhom(invitation.invited_by);
  $("invite-expires").textContent = new Date(invitation.expires_ms).toLocaleString([], {
    dateStyle: "medium", timeStyle: "short",
  });
  $("invitation").hidden = false;
  if (!session) {
    $("signin").href = `/signin?next=${encodeURIComponent(location.pathname)}`;
    step("step-signin");
  } else if (session.account.email !== invitation.email) {
    $("signed-in-as").textContent = session.account.email;
    step("step-other");
  } else {
    step("step-accept");
    $("accept").focus();
  }
}

// A moderator's console is a stream's host console: list the creator's streams.
async function showStreams(creator) {
  const r = await api("GET", `/api/v1/creators/${encodeURIComponent(creator)}/streams?limit=20`);
  const list = $("streams");
  list.replaceChildren();
  const items = r.ok ? r.data.items : [];
  for (const stream of items) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/host/${encodeURIComponent(stream.id)}`;
    link.textContent = stream.title;
    li.append(link, ` (${stream.state})`);
    list.append(li);
  }
  $("done-text").textContent = items.length
    ? `You moderate ${creator}'s streams. Open one to watch over it:`
    : `You moderate ${creator}'s streams. ${creator} has no streams yet; come back to this page when one is scheduled.`;
}

$("accept").addEventListener("click", async () => {
  const button = $("accept");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  say("", "Accepting…");
  const r = await api("POST", "/auth/invitations/accept", { csrf: session.csrf, body: { token } });
  if (!r.ok) {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    say("error", refusal(r));
    return;
  }
  const acting = await api("POST", "/auth/act", { csrf: session.csrf, body: { grant: r.data.grant } });
  if (!acting.ok) {
    say("error", problemText(acting));
    return;
  }
  if (r.data.console) {
    location.assign(r.data.console);
    return;
  }
  $("invitation").hidden = true;
  $("done").hidden = false;
  say("ok", "Invitation accepted.");
  const [role, subject] = r.data.grant.split(/:(.*)/s);
  if (role === "moderator") await showStreams(subject);
  else $("done-text").textContent = `You are ${invitation.what} now.`;
  $("done-heading").focus();
});

$("signout").addEventListener("click", async () => {
  const r = await api("POST", "/auth/signout", { csrf: session.csrf });
  if (!r.ok) {
    say("error", problemText(r));
    return;
  }
  location.assign(`/signin?next=${encodeURIComponent(location.pathname)}`);
});

async function init() {
  const r = await api("GET", `/auth/invitations/${encodeURIComponent(token)}`);
  if (!r.ok) {
    $("invite-title").textContent = "Invitation unavailable";
    say("error", refusal(r));
    return;
  }
  invitation = r.data;
  session = await pageSession();
  showInvitation();
}

init();
