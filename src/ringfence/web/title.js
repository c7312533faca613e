// The tab's title: the screen's own ("Inbox · Ringfence"), led by the number of
// unread messages when there are any ("(3) Inbox · Ringfence"), as mail and chat
// apps do, so a glance at the tab says whether anything is waiting. Views set their
// title here rather than on document.title, so neither part overwrites the other.

let page = "Ringfence";
let unread = 0;

/** @param {string} title The screen's title, without the count. */
export function setPageTitle(title) {
  page = title;
  apply();
}

/** @param {number} count Unread messages in all conversations. */
export function setUnreadCount(count) {
  unread = count;
  apply();
}

function apply() {
  const title = unread > 0 ? `(${unread}) ${page}` : page;
  if (document.title !== title) document.title = title;
}
