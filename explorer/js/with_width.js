// Runs before an event that renders maps: the last input (client_width) becomes the plot's width
// in px, so sizes, fonts and the phone layout follow the screen (also after a resize).
(...args) => {
  const el = document.querySelector('#attention-plot .live-plot');
  const w = el && el.clientWidth > 100 ? el.clientWidth : document.body.clientWidth - 32;
  args[args.length - 1] = Math.max(240, Math.round(w));
  return args;
}
