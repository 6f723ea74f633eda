// Agora console: draws every [data-chart] element with ECharts (SVG renderer, no animation), on page load
// and in every fragment htmx swaps in; shows refused actions (4xx/5xx answers) in #flash.
(function () {
  "use strict";
  function draw(root) {
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el._chart) return;
      var chart = echarts.init(el, null, { renderer: "svg" });
      var option = JSON.parse(el.getAttribute("data-chart"));
      option.animation = false;  // values at once: the live chart is redrawn every 5 s
      chart.setOption(option);
      el._chart = chart;
      el.setAttribute("data-drawn", "true");
    });
  }
  draw(document.body);
  htmx.onLoad(draw);
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el._chart) el._chart.resize();
    });
  });
  document.body.addEventListener("htmx:responseError", function (evt) {
    var flash = document.getElementById("flash");
    if (!flash) return;
    var xhr = evt.detail.xhr, text = xhr.statusText;
    try { text = JSON.parse(xhr.responseText).detail || text; } catch (e) { /* not JSON */ }
    flash.textContent = xhr.status + ": " + text;
    flash.hidden = false;
  });
})();
