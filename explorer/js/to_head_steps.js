// "↑ view its steps" beside a map that chose a head: back up to the steps it now shows.
() => document.querySelector('#head-title').scrollIntoView({behavior: 'smooth', block: 'start'})
