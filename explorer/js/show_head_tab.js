// After a click on the Attention tab's map has been handled, show its result.
() => {
  const c = JSON.parse(window.__headTabClick || '{}');
  if (c.plot !== 'attention-plot') return;
  const tab = [...document.querySelectorAll('button[role=tab]')].find(b => b.textContent.trim() === 'Inside a head');
  if (tab) tab.click();
}
