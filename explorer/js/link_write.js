// After any view change: the address bar shows the link of what is on screen (no reload). The
// inputs arrive in the order of explorer/share_link.py's LINKED; __NAMES__ and __TABS__ are filled in there.
(...values) => {
  const names = __NAMES__, tabs = __TABS__;
  const params = new URLSearchParams();
  names.forEach((name, i) => {
    let v = values[i];
    if (v === null || v === undefined || v === '') return;
    if (Array.isArray(v)) v = v.join(',');
    if (typeof v === 'boolean') v = v ? '1' : '0';
    if (name === 'avg') v = v === 'average' ? '1' : '0';
    if (name === 'hquery') v = Number(v) + 1;  // the menu's value is the row index; links count from 1
    params.set(name, String(v));
  });
  const shown = document.querySelector('.tabs [role=tab][aria-selected=true]');
  const tab = shown && tabs[shown.textContent.trim()];
  if (tab) params.set('tab', tab);
  history.replaceState(null, '', location.pathname + '?' + params.toString());
  return [];
}
