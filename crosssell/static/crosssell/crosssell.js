/* crosssell: keeps the "frequently bought together" bundle price and button in step with the
   checkboxes. The server renders the full bundle's total, so the widget is right without JS. */
(function () {
  "use strict";

  function format(root, cents) {
    var prefix = root.getAttribute("data-currency") || "";
    var whole = Math.floor(cents / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var frac = ("0" + (cents % 100)).slice(-2);
    return prefix + whole + "." + frac;
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
    if (total) {
      total.textContent = format(root, cents);
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
