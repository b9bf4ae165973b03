// How a console page (brand dashboard, host console, creator page) speaks for its owner: the
// token of its URL fragment (the demo's links, API clients, scripts), or else the signed-in
// account's page session, switched to the grant the page needs (POST /auth/act).

import { api, pageSession, signinHref } from "./api.js";
import { pageToken } from "./hub_client.js";

const isOperator = (grant) => grant.startsWith("operator:");

/**
 * `wanted`: the grants this page works with, best first (an operator grant always does).
 * Resolves to {mode: "token", token, auth, ticket: null}, {mode: "session", session, grant,
 * auth, ticket}, or {mode: "none", why: "signed-out" | "no-grant", session}. `auth` goes to
 * api() as it is; `ticket` is the hub option of a signed-in page (a fresh ticket per socket).
 */
export async function consoleAuth(tokenKey, wanted) {
  const token = pageToken(tokenKey);
  if (token) return { mode: "token", token, auth: { token }, ticket: null };
  const session = await pageSession();
  if (!session) return { mode: "none", why: "signed-out", session: null };
  const held = session.account.grants;
  const grant = wanted.includes(session.active) || isOperator(session.active) ? session.active
    : [...wanted, ...held.filter(isOperator)].find((g) => held.includes(g));
  if (!grant) return { mode: "none", why: "no-grant", session };
  if (grant !== session.active) {
    const r = await api("POST", "/auth/act", { csrf: session.csrf, body: { grant } });
    if (!r.ok) return { mode: "none", why: "no-grant", session };
  }
  const ticket = async () => {
    const r = await api("POST", "/auth/ticket", { csrf: session.csrf });
    return r.ok ? r.data.ticket : null;
  };
  return { mode: "session", session, grant, auth: { csrf: session.csrf }, ticket };
}

/** Why the page cannot work, in `node`, with a way to sign in (as someone else). */
export function explainNoAccess(node, access, what) {
  node.dataset.kind = "error";
  const link = document.createElement("a");
  link.href = signinHref();
  if (access.why === "signed-out") {
    link.textContent = "Sign in";
    node.replaceChildren(link, ` to open ${what}, or open it from a link that carries its token.`);
  } else {
    link.textContent = "Sign in with another account";
    node.replaceChildren(`${access.session.account.email} has no access to ${what}. `, link, ".");
  }
}
