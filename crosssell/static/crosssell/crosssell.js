/* crosssell: keeps the "frequently bought together" bundle price and button in step with the
   checkboxes. The server renders the full bundle's total, so the widget is right without JS. */
(function () {
  "use strict";

  // The server writes one sample amount, 1234567.89, as the shop formats money
  // (data-money-sample); what surrounds its digits gives the sign, the separators and the
  // number of decimals, so the script never assumes a currency.
  var SAMPLE = /^([\s\S]*?)1(\D*)234(\D*)56(?:7(\D+)(89|9)|(8))([^\d]*)$/;

  function pattern(root) {
    var m = SAMPLE.exec(root.getAttribute("data-money-sample") || "");
    if (!m || m[2] !== m[3]) {
      return null;
    }
    var decimals = m[5] ? m[5].length : 0;
    return {prefix: m[1], group: m[2], point: m[4] || "", decimals: decimals, suffix: m[7]};
  }

  function format(root, cents) {
    var p = pattern(root);
    if (!p) {
      return null; // unknown format: the server-rendered total stays
    }
    var units = p.decimals === 2 ? cents : Math.round(cents / Math.pow(10, 2 - p.decimals));
    var scale = Math.pow(10, p.decimals);
    var whole = Math.floor(units / scale).toString();
    if (p.group) {
      whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, p.group);
    }
    var frac = p.decimals ? p.point + ("00" + (units % scale)).slice(-p.decimals) : "";
    return p.prefix + whole + frac + p.suffix;
  }

  function update(root) {
    var boxes = root.querySelectorAll('input[type="checkbox"][name="product_id"]');
    var cents = 0;
    var count = 0;
    Array.prototype.forEach.call(boxes, function (box) {
      var item = box.closest(".cs-fbt-item");
      if (box.checked) {
        cents += parseInt(box.getAttribute("data-price-cents"), 10) || 0;
        count += 1;
      }
      if (item) {
        item.classList.toggle("cs-unselected", !box.checked);
      }
    });
    var total = root.querySelector("[data-crosssell-total]");
    var text = format(root, cents);
    if (total && text !== null) {
      total.textContent = text;
    }
    var counter = root.querySelector("[data-crosssell-count]");
    if (counter) {
      counter.textContent = String(count);
    }
    var button = root.querySelector('button[type="submit"]');
    if (button) {
      button.disabled = count === 0;
    }
  }

  function init(root) {
    if (root.getAttribute("data-crosssell-ready")) {
      return;
    }
    root.setAttribute("data-crosssell-ready", "true");
    root.addEventListener("change", function () {
      update(root);
    });
    update(root);
  }

  function initAll() {
    var roots = document.querySelectorAll('[data-crosssell="frequently-bought-together"]');
    Array.prototype.forEach.call(roots, init);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initAll);
  } else {
    initAll();
  }
})();
