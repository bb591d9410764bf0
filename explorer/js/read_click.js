// The hidden click button's event: its first input becomes the click that install_clicks.js kept.
(click, ...rest) => [window.__headTabClick || '', ...rest]
