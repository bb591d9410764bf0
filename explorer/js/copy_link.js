// "Copy link": the address bar already holds the view's link (link_write.js).
() => {
  const url = location.href;
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(url);
  else window.prompt('Copy this link:', url);
  return [];
}
