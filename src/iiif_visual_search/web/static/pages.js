// Small progressive enhancements; the page works without them.
(function () {
  'use strict';
  function ready(fn) { if (document.readyState !== 'loading') fn(); else document.addEventListener('DOMContentLoaded', fn); }
  ready(function () {
    var form = document.getElementById('search');
    // Sidebar choices apply at once (HTMX swaps the results); without JS the "Apply" button does it.
    document.addEventListener('change', function (ev) {
      var el = ev.target;
      if (!form || !el.hasAttribute || !el.hasAttribute('data-autosubmit')) return;
      if (el.form !== form) return;
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    });
    // Drag and drop a picture onto the upload box: it fills the file input, then searches.
    var zone = document.getElementById('drop-zone');
    var input = document.getElementById('image');
    if (zone && input) {
      ['dragenter', 'dragover'].forEach(function (name) {
        zone.addEventListener(name, function (ev) { ev.preventDefault(); zone.classList.add('dragging'); });
      });
      ['dragleave', 'drop'].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove('dragging'); });
      });
      zone.addEventListener('drop', function (ev) {
        ev.preventDefault();
        var files = ev.dataTransfer && ev.dataTransfer.files;
        if (!files || !files.length) return;
        input.files = files;
        input.form.submit();
      });
    }
    // After a link (similar, paging) swapped the results, move focus to them so screen readers hear the
    // news; filter changes keep focus where it was, on the control just used.
    var fromLink = false;
    document.body.addEventListener('htmx:beforeRequest', function (ev) {
      fromLink = !!(ev.detail && ev.detail.elt && ev.detail.elt.tagName === 'A');
    });
    document.body.addEventListener('htmx:afterSettle', function () {
      var results = document.getElementById('results');
      if (fromLink && results) results.focus();
      fromLink = false;
    });
  });
})();
