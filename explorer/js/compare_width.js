// Runs before the Compare tab draws: the last input becomes the width in px of one of its two maps.
(...args) => {
  const el = document.querySelector('#compare-a .live-plot');
  const w = el && el.clientWidth > 100 ? el.clientWidth : Math.min(700, document.body.clientWidth - 32);
  args[args.length - 1] = Math.max(240, Math.round(w));
  return args;
}
