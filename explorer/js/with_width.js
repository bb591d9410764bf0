// Runs before an event that renders maps: the last input (client_width) becomes the plot's width
// in px, so sizes, fonts and the phone layout follow the screen (also after a resize). The
// Attention tab's map when it is shown, else the "Inside a head" tab's scores.
(...args) => {
  const shown = ['#attention-plot .live-plot', '#head-scores-plot .live-plot']
    .map(s => document.querySelector(s)).find(el => el && el.clientWidth > 100);
  const w = shown ? shown.clientWidth : document.body.clientWidth - 32;
  args[args.length - 1] = Math.max(240, Math.round(w));
  return args;
}
