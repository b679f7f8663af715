// On a phone the tables are cards (style.css): each cell names its column itself, from the table's header.
// Rows a page's script draws later (the dashboard, the operator's page) are named as they arrive.
(function () {
  "use strict";

  function columnNames(table) {
    var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    var names = [];
    if (!head) return names;
    Array.prototype.forEach.call(head.cells, function (cell) {
      for (var i = 0; i < cell.colSpan; i++) names.push(cell.textContent.trim());
    });
    return names;
  }

  function label(table) {
    var names = columnNames(table);
    if (!names.length) return;
    var rows = [];
    Array.prototype.forEach.call(table.tBodies, function (body) { rows.push.apply(rows, body.rows); });
    if (table.tFoot) rows.push.apply(rows, table.tFoot.rows);
    rows.forEach(function (row) {
      var column = 0;
      Array.prototype.forEach.call(row.cells, function (cell) {
        // A cell across the whole row ("No calls in progress.") is a message, not a column's value.
        if (cell.colSpan === 1 && names[column] && cell.getAttribute("data-label") !== names[column]) {
          cell.setAttribute("data-label", names[column]);
        }
        column += cell.colSpan;
      });
    });
  }

  function labelAll() {
    Array.prototype.forEach.call(document.querySelectorAll("main table"), label);
  }

  labelAll();
  var main = document.querySelector("main");
  if (main && window.MutationObserver) {
    new MutationObserver(labelAll).observe(main, {childList: true, subtree: true});
  }
})();
