// A team panel: who holds a grant (a brand's admins and members, a creator's moderators),
// the invitations to it still open, and, for whoever may manage it, a form to invite by email and
// buttons to remove a member or revoke an invitation. The brand dashboard and the creator
// page each mount one; the server decides who may do what (docs/accounts.md).

import { api, problemText } from "./api.js";
import { setText, syncList } from "./cards.js";

const part = (root, name) => root.querySelector(`[data-part="${name}"]`);

/**
 * `root`: the panel (its parts are marked with data-part); `grant`: e.g. "brand:acme";
 * `members`: the API path of its members; `auth`: api()'s auth options; `roleLabel`: words
 * for a member's brand_role (null for grants without one).
 */
export function mountTeam(root, { grant, members, auth, roleLabel = null }) {
  const status = part(root, "status");
  let canManage = false;

  function say(kind, text) {
    status.dataset.kind = kind;
    setText(status, text);
  }

  // A row: who, what (role, state), and a button (its visible word, its full name hidden).
  function row() {
    const li = document.createElement("li");
    li.className = "team-item";
    const who = document.createElement("span");
    who.className = "team-who";
    const what = document.createElement("span");
    what.className = "team-what";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-small btn-secondary";
    button.append(document.createElement("span"), document.createElement("span"));
    button.lastChild.className = "visually-hidden";
    li.append(who, what, button);
    return li;
  }

  function actionOf(li, word, name, onClick) {
    const button = li.querySelector("button");
    button.hidden = !canManage;
    setText(button.firstChild, word);
    setText(button.lastChild, name.slice(word.length));
    button.onclick = () => onClick(button);
  }

  function updateMember(li, m) {
    const name = m.display_name || m.email || m.account;
    setText(li.querySelector(".team-who"), name);
    setText(li.querySelector(".team-what"), roleLabel && m.brand_role ? roleLabel(m.brand_role) : "");
    actionOf(li, "Remove", `Remove ${name}`, (button) => remove(m, name, button));
  }

  function updateInvitation(li, i) {
    setText(li.querySelector(".team-who"), i.email);
    const role = roleLabel && i.brand_role ? `${roleLabel(i.brand_role)}, ` : "";
    const until = new Date(i.expires_ms).toLocaleDateString([], { dateStyle: "medium" });
    setText(li.querySelector(".team-what"), `${role}invited, open until ${until}`);
    actionOf(li, "Revoke", `Revoke the invitation of ${i.email}`, (button) => revoke(i, button));
  }

  function renderMembers(items) {
    syncList(part(root, "members"), items, (m) => m.account, (m) => {
      const li = row();
      updateMember(li, m);
      return li;
    }, updateMember);
    part(root, "members-empty").hidden = items.length > 0;
  }

  function renderInvitations(items) {
    syncList(part(root, "invitations"), items, (i) => i.id, (i) => {
      const li = row();
      updateInvitation(li, i);
      return li;
    }, updateInvitation);
  }

  async function refresh() {
    const r = await api("GET", members, auth);
    if (!r.ok) {
      say("error", problemText(r));
      return;
    }
    canManage = r.data.can_manage;
    part(root, "form").hidden = !canManage;
    setText(part(root, "note"), canManage ? "" : "Only an admin invites or removes people here.");
    renderMembers(r.data.items);
    const sent = canManage ? await api("GET", "/api/v1/invitations?limit=100", auth) : null;
    // Those still open; accepted ones are members now, revoked and expired ones are done.
    const mine = sent && sent.ok
      ? sent.data.items.filter((i) => i.grant === grant && i.state === "pending") : [];
    part(root, "invitations-block").hidden = mine.length === 0;
    renderInvitations(mine);
  }

  async function remove(member, name, button) {
    button.disabled = true;
    const r = await api("DELETE", `${members}/${encodeURIComponent(member.account)}`, auth);
    button.disabled = false;
    if (r.ok) say("ok", `Removed ${name}.`);
    else say("error", problemText(r));
    await refresh();
  }

  async function revoke(invitation, button) {
    button.disabled = true;
    const r = await api("DELETE", `/api/v1/invitations/${encodeURIComponent(invitation.id)}`, auth);
    button.disabled = false;
    if (r.ok) say("ok", `Revoked the invitation of ${invitation.email}.`);
    else say("error", problemText(r));
    await refresh();
  }

  part(root, "form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = part(root, "email");
    const email = input.value.trim();
    if (!email) {
      say("error", "Enter the email address to invite.");
      input.focus();
      return;
    }
    const body = { email, grant };
    const role = part(root, "role");
    if (role) body.brand_role = role.value;
    const submit = part(root, "submit");
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    const r = await api("POST", "/api/v1/invitations", { ...auth, body });
    submit.disabled = false;
    submit.removeAttribute("aria-busy");
    if (!r.ok) {
      say("error", problemText(r));
      input.focus();
      return;
    }
    input.value = "";
    say("ok", `Invitation sent to ${r.data.email}.`);
    await refresh();
  });

  root.hidden = false;
  return refresh();
}
