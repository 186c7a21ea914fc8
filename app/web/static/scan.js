// The scan page: keep the scan field focused for a keyboard-wedge scanner, read codes with the
// phone camera (the server decodes the frame), and tick vials off the manifest at receipt.
// Plain JavaScript, no framework and no barcode decoder in the browser.
(function () {
  "use strict";

  var field = document.querySelector("[data-scan-focus]");

  // --- Focus: a wedge scanner types wherever the focus is, then sends Enter -----------------
  function interactive(element) {
    return element && element.closest &&
      element.closest("input, textarea, select, button, a, label, summary, video, [tabindex]");
  }

  if (field) {
    var refocus = function () {
      var active = document.activeElement;
      if (!active || active === document.body || active === document.documentElement) {
        field.focus();
      }
    };
    field.focus();
    window.addEventListener("pageshow", refocus); // back from another page: ready to scan
    document.addEventListener("click", function (event) {
      if (!interactive(event.target)) {
        field.focus();
      }
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        refocus();
      }
    });
  }

  // --- Camera: capture a frame, send it, and look the decoded text up like a typed scan -----
  var camera = document.querySelector("[data-camera]");
  var scanForm = document.querySelector("[data-scan-form]");
  var photoForm = document.querySelector("[data-photo-form]");

  if (camera && scanForm && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    var start = camera.querySelector("[data-camera-start]");
    var video = camera.querySelector("[data-camera-video]");
    var controls = camera.querySelector("[data-camera-controls]");
    var capture = camera.querySelector("[data-camera-capture]");
    var stop = camera.querySelector("[data-camera-stop]");
    var status = camera.querySelector("[data-camera-status]");
    var canvas = document.createElement("canvas");
    var token = photoForm ? photoForm.querySelector("[name=csrf_token]").value : "";
    var stream = null;
    var timer = null;
    var busy = false;

    var say = function (text, bad) {
      status.textContent = text;
      status.classList.toggle("bad", Boolean(bad));
    };

    var stopCamera = function () {
      if (timer) {
        clearInterval(timer);
        timer = null;
      }
      if (stream) {
        stream.getTracks().forEach(function (track) { track.stop(); });
        stream = null;
      }
      video.hidden = true;
      controls.hidden = true;
      start.hidden = false;
    };

    var read = function (quiet) {
      if (busy || !stream || !video.videoWidth) {
        return;
      }
      busy = true;
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) {
        var body = new FormData();
        body.append("image", blob, "frame.jpg");
        fetch(camera.dataset.url, {
          method: "POST",
          body: body,
          credentials: "same-origin",
          headers: { "Accept": "application/json", "X-CSRFToken": token }
        }).then(function (response) {
          return response.json().then(function (answer) {
            return { ok: response.ok, answer: answer };
          });
        }).then(function (result) {
          busy = false;
          if (result.ok && result.answer.code) {
            stopCamera();
            say("Code read: looking it up…");
            field.value = result.answer.code;
            scanForm.submit();
          } else if (!quiet) {
            say(result.answer.reason || "The picture could not be read.", true);
          }
        }).catch(function () {
          busy = false;
          if (!quiet) {
            say("No connection to celltrail: try again, or type the code.", true);
          }
        });
      }, "image/jpeg", 0.92);
    };

    start.hidden = false;
    start.addEventListener("click", function () {
      say("Starting the camera…");
      navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }
      }).then(function (media) {
        stream = media;
        video.srcObject = media;
        video.hidden = false;
        controls.hidden = false;
        start.hidden = true;
        say("Point the camera at the code; it is read by itself, or press Read the code.");
        return video.play();
      }).then(function () {
        timer = setInterval(function () { read(true); }, 1200);
      }).catch(function (error) {
        stopCamera();
        say("The camera is not available (" + error.name + "): type the code, or send a photo.", true);
      });
    });
    capture.addEventListener("click", function () { read(false); });
    stop.addEventListener("click", function () {
      stopCamera();
      say("");
      field.focus();
    });
    window.addEventListener("pagehide", stopCamera);
  }

  // A chosen photo goes at once: one tap less on a phone.
  if (photoForm) {
    var file = photoForm.querySelector("input[type=file]");
    file.addEventListener("change", function () {
      if (file.files && file.files.length) {
        photoForm.submit();
      }
    });
  }

  // --- Receipt: tick each scanned vial off the manifest ---------------------------------------
  var vials = document.querySelector("[data-receipt-vials]");
  if (vials) {
    var items = Array.prototype.slice.call(document.querySelectorAll("[data-serial]"));
    var packed = {};
    items.forEach(function (item) { packed[item.dataset.serial] = item; });
    var count = document.querySelector("[data-receipt-count]");
    var strangers = document.querySelector("[data-receipt-strangers]");

    var serialOf = function (line) {
      var link = /\/21\/([^/?#]+)/.exec(line);
      if (link) {
        return decodeURIComponent(link[1]);
      }
      var element = /\(21\)([^(]+)/.exec(line);
      return element ? element[1] : line;
    };

    var tally = function () {
      var seen = {};
      var others = [];
      vials.value.split(/[\r\n]+/).forEach(function (line) {
        line = line.trim();
        if (!line) {
          return;
        }
        var serial = serialOf(line);
        if (packed[serial]) {
          seen[serial] = true;
        } else if (others.indexOf(serial) < 0) {
          others.push(serial);
        }
      });
      var scanned = 0;
      items.forEach(function (item) {
        var hit = Boolean(seen[item.dataset.serial]);
        item.classList.toggle("scanned", hit);
        scanned += hit ? 1 : 0;
      });
      count.textContent = scanned + " of " + items.length + " vials scanned";
      strangers.hidden = others.length === 0;
      strangers.textContent = others.length ? "Not packed in this shipper: " + others.join(", ") : "";
    };
    vials.addEventListener("input", tally);
    tally();
    // The cursor goes to the end, so the next scan starts on a new line.
    if (vials.value && !/\n$/.test(vials.value)) {
      vials.value += "\n";
    }
    vials.setSelectionRange(vials.value.length, vials.value.length);
  }
})();
