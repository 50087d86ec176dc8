// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A form marked data-once is sent once: a second click does nothing. (The server is safe
  // anyway: the checkout form's Idempotency-Key makes a resubmission replay the first order.)
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.setAttribute("aria-disabled", "true");
        button.textContent = "Placing order…";
      });
    });
  });
  // A file input marked data-preview="<img id>" shows the chosen image before upload.
  document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
    var preview = document.getElementById(input.dataset.preview);
    input.addEventListener("change", function () {
      if (!preview) return;
      if (preview.src) URL.revokeObjectURL(preview.src);
      var file = input.files && input.files[0];
      preview.hidden = !file;
      if (file) preview.src = URL.createObjectURL(file);
    });
  });
});
