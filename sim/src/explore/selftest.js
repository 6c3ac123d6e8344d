// The self-test every paylab page shares, inlined before the page's own script: every script
// error (the page script's own syntax errors included) is counted on the #selftest element,
// which the browser tests read. The page reports through `window.paylabFail`.
(function () {
  "use strict";
  var selftest = document.getElementById("selftest");
  var errors = 0;
  window.paylabFail = function (message) {
    errors += 1;
    selftest.setAttribute("data-errors", String(errors));
    selftest.setAttribute("data-error-message", String(message));
  };
  window.addEventListener("error", function (e) { window.paylabFail(e.message); });
})();
