// Installed once per page (on load): choosing a tab writes it into the address bar's link, so that
// "Copy link" names the tab on screen (link_write.js writes the rest, on every control change).
// __TABS__ (tab title → its name in links) is filled in by explorer/share_link.py.
() => {
  if (window.__linkTabsInstalled) return [];
  window.__linkTabsInstalled = true;
  const tabs = __TABS__;
  document.addEventListener('click', e => {
    if (!e.target.closest || !e.target.closest('.tabs [role=tab], .tabs .overflow-dropdown button')) return;
    requestAnimationFrame(() => {  // after the tab's own click handler has selected it
      const shown = document.querySelector('.tabs [role=tab][aria-selected=true]');
      const tab = shown && tabs[shown.textContent.trim()];
      if (!tab) return;
      const params = new URLSearchParams(location.search);
      if (params.get('tab') === tab) return;
      params.set('tab', tab);
      history.replaceState(null, '', location.pathname + '?' + params.toString());
    });
  }, true);
  return [];
}
