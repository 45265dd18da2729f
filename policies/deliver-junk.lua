-- deliver-junk.lua - spam goes to the user's Junk folder.
-- A message whose score reached the add-header threshold (ctx.scan.action
-- "add header") is filed into Junk, as the ISPmail guide's global Sieve
-- script does with rspamd's "X-Spam: Yes". Everything else: INBOX.
hook("deliver", function(ctx, rcpt)
  if ctx.scan and ctx.scan.action == "add header" then
    fileinto("Junk")
    stop()
  end
end)
