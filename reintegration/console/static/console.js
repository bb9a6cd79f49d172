// Progressive enhancement only: every page works without it. Focusing or pointing at a mark of the timeline
// highlights its row in the table of events (and the other way round).
(function () {
  "use strict";
  function rows(version) {
    return document.querySelectorAll('tr[data-version="' + version + '"], a.point[data-version="' + version + '"]');
  }
  function mark(version, on) {
    rows(version).forEach(function (el) { el.classList.toggle("highlight", on); });
  }
  document.querySelectorAll("[data-version]").forEach(function (el) {
    var version = el.getAttribute("data-version");
    ["focusin", "mouseenter"].forEach(function (type) { el.addEventListener(type, function () { mark(version, true); }); });
    ["focusout", "mouseleave"].forEach(function (type) { el.addEventListener(type, function () { mark(version, false); }); });
  });
})();
