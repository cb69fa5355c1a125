// Draws every figure the page carries: <div data-figure="id"> with its JSON in <script type="application/json" id="id">.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || typeof Plotly === "undefined") { return; }
    var figure = JSON.parse(source.textContent);
    Plotly.newPlot(el, figure.data, figure.layout, {displaylogo: false, responsive: true})
      .then(function () { el.dataset.drawn = "true"; });
  });
});
