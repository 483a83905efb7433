/* Small behaviours shared by the admin pages; every page works without them. */
(function () {
  "use strict";

  /* Authentication fields: only those of the chosen kind are shown (a rule, an IVR). */
  var AUTH_FIELDS = {
    oauth: ["oauth_account_id"],
    basic: ["basic_username", "basic_password"],
    bearer: ["bearer_token"]
  };

  function showAuthFields(select) {
    Object.keys(AUTH_FIELDS).forEach(function (kind) {
      AUTH_FIELDS[kind].forEach(function (name) {
        var input = document.getElementById("f-" + name);
        var field = input && input.closest(".field");
        if (field) {
          field.hidden = select.value !== kind;
        }
      });
    });
  }

  /* Copy by selecting the element's text: where the clipboard API is missing (plain http
     on a non-loopback address) or refuses (the page does not have the focus). */
  function copyBySelection(source, done) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) {
      done();
    }
  }

  /* Copy buttons: <button data-copy="element-id"> copies that element's text. */
  function copy(button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source) {
      return;
    }
    var done = function () {
      button.textContent = button.dataset.copied || button.textContent;
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent.trim()).then(done, function () {
        copyBySelection(source, done);
      });
      return;
    }
    copyBySelection(source, done);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var auth = document.getElementById("f-auth_type");
    if (auth && document.getElementById("f-basic_username")) {
      auth.addEventListener("change", function () { showAuthFields(auth); });
      showAuthFields(auth);
    }
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  });
})();
